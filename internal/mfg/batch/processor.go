// Package batch is the manufacturing line's batch processor: it reads a
// manifest, checks every row against its factory, gives every new unit its
// birth identity on every core and commits units with their certificates,
// chunk by chunk, streaming per-row results. It reaches the registry and
// the CAs through the small Registry and Authorities interfaces; package
// mfg holds the pure parts it builds on.
package batch

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// Registry is the device registry as the batch processor uses it;
// *store.Store has it.
type Registry interface {
	ExistingDevices(ctx context.Context, ds []*fleet.Device) ([]*fleet.Device, error)
	KeyOwners(ctx context.Context, fingerprints []string) (map[string]string, error)
	BirthCertificates(ctx context.Context, deviceIDs []string) (map[string]store.Certificate, error)
	ManufactureDevices(ctx context.Context, items []store.ManufactureItem, actor string) ([]bool, error)
}

// Authorities are the CAs the processor issues with and checks against;
// *ca.Registry has them.
type Authorities interface {
	IssuerFor(ctx context.Context, p pki.Purpose, factory string) (*ca.Authority, error)
	Certificate(ctx context.Context, id string) (*x509.Certificate, error)
}

// DefaultChunkSize is how many rows the processor checks, signs and
// commits together: enough for bulk inserts to pay off, few enough that
// results stream back steadily and one chunk's memory stays small.
const DefaultChunkSize = 1000

// Options tune a Processor; the zero value is ready to use.
type Options struct {
	// BirthValidity of birth certificates; pki.DefaultBirthValidity (20
	// years) when zero. Certificates never outlive their CA.
	BirthValidity time.Duration
	// MintAlgorithm of minted keys; ECDSA P-256 when empty.
	MintAlgorithm pki.KeyAlgorithm
	// CSRRules are the CSR admission rules (pki's defaults when zero).
	CSRRules pki.CSRRules
	// ChunkSize defaults to DefaultChunkSize; Workers, the goroutines that
	// check and sign, to GOMAXPROCS.
	ChunkSize, Workers int
}

// Processor registers manufacturing batches: it reads a manifest, checks
// every row against its factory, gives every new unit its birth identity
// and commits units with their certificates, chunk by chunk. It is safe for
// concurrent use; one Processor serves a whole node.
type Processor struct {
	reg  Registry
	cas  Authorities
	opts Options
}

// NewProcessor returns a processor writing to reg and signing with cas.
func NewProcessor(reg Registry, cas Authorities, opts Options) *Processor {
	if opts.MintAlgorithm == "" {
		opts.MintAlgorithm = pki.ECDSAP256
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	return &Processor{reg: reg, cas: cas, opts: opts}
}

// Submission is one submission of a batch's manifest.
type Submission struct {
	// ID names the batch; rows without their own batch get it.
	ID string
	// Factory is the factory the rows belong to, from mfg.NewFactory.
	Factory *mfg.Factory
	KeyMode mfg.KeyMode
	// Actor is who submits, as recorded in the devices' histories.
	Actor string
	// BOMs are the per-model BOMs for rows without their own.
	BOMs mfg.BOMSet
}

// Run registers every row of mr and hands the results to emit in row
// order, one chunk at a time, as soon as each chunk is committed. A row
// that is refused gets an error result and never holds up the others. A
// serial registered before, by an earlier submission or earlier in this
// one, comes back as "exists" with its device id and the birth certificate
// it already has; nothing is issued twice.
//
// Run fails only when it cannot go on: the manifest cannot be read, the
// registry or the CA fails, emit fails or ctx ends. The chunks emitted
// before stay committed, so submitting the manifest again completes it.
func (p *Processor) Run(ctx context.Context, b Submission, mr *mfg.ManifestReader, emit func([]mfg.Result) error) (mfg.Summary, error) {
	start := time.Now()
	var sum mfg.Summary
	if b.Factory == nil {
		return sum, errors.New("batch: a submission needs its factory")
	}
	if err := mfg.CheckKeyMode(b.Factory.CAMode, b.KeyMode); err != nil {
		return sum, err
	}
	r, err := p.newRun(ctx, b)
	if err != nil {
		return sum, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Four stages overlap: reading the manifest, looking up which units
	// exist, checking and signing on every core, and committing. Only the
	// signing stage should ever be busy all the time.
	chunks := make(chan []*unit, 1)
	// The reader is not waited for: a read blocked on a stalled upload
	// ends when the caller closes the manifest's source.
	go func() {
		defer close(chunks)
		if err := r.read(ctx, mr, chunks); err != nil {
			cancel(fmt.Errorf("batch: %w", err))
		}
	}()
	var wg sync.WaitGroup
	looked := stage(ctx, cancel, &wg, chunks, r.lookup)
	secured := stage(ctx, cancel, &wg, looked, r.secure)
	for c := range secured {
		if ctx.Err() != nil {
			break
		}
		results, err := r.commit(ctx, c)
		if err == nil {
			err = emit(results)
		}
		if err != nil {
			cancel(err)
			break
		}
		for _, res := range results {
			sum.Add(res)
		}
	}
	failed := context.Cause(ctx) // nil unless a stage failed or ctx ended
	cancel(nil)
	for range secured { // unblock the stages so they see the cancellation
	}
	wg.Wait()
	sum.Finish(time.Since(start))
	return sum, failed
}

// stage runs fn on every chunk from in, in order, on a goroutine of its
// own, and hands each chunk on. A failure cancels the run.
func stage(ctx context.Context, cancel context.CancelCauseFunc, wg *sync.WaitGroup, in <-chan []*unit,
	fn func(context.Context, []*unit) error) <-chan []*unit {
	out := make(chan []*unit, 1)
	wg.Go(func() {
		defer close(out)
		for c := range in {
			if err := fn(ctx, c); err != nil {
				cancel(err)
				return
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	})
	return out
}

// run is the state of one Run: the factory's CA and what earlier rows of
// the batch claimed.
type run struct {
	p      *Processor
	b      Submission
	issuer *ca.Authority
	// verifier checks register-mode certificates against the factory's CA.
	verifier *pki.Verifier
	// byKey holds the first row of each model and serial of the batch;
	// only the lookup stage writes it. byKeyFP holds the line of the first
	// row certifying each public key; only the committing stage uses it.
	// Both keep a few bytes per row, never the row itself.
	byKey   map[[2]string]*claim
	byKeyFP map[string]int
	// chains caches issuing CA certificates by CA id; only the committing
	// stage uses it.
	chains map[string]string
}

// claim is what later rows of a batch repeating a row's model and serial
// learn about it: its result without certificate or key, once committed.
type claim struct {
	line int
	res  mfg.Result
}

func (p *Processor) newRun(ctx context.Context, b Submission) (*run, error) {
	r := &run{p: p, b: b, byKey: map[[2]string]*claim{}, byKeyFP: map[string]int{}, chains: map[string]string{}}
	issuer, err := p.cas.IssuerFor(ctx, IssuerPurpose(b.KeyMode), b.Factory.Name)
	if err != nil {
		return nil, fmt.Errorf("batch: the CA of factory %s: %w", b.Factory.Name, err)
	}
	r.issuer = issuer
	if b.KeyMode == mfg.KeyModeRegister {
		// A certificate being registered is new to Muster, so nothing of
		// Muster's can have revoked it.
		r.verifier, err = pki.NewVerifier(anchorsOf{ExternalManufacturers: []*x509.Certificate{issuer.Cert}}, notRevoked{})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// keyField is the row field that carries a unit's public key.
func (r *run) keyField() string {
	if r.b.KeyMode == mfg.KeyModeRegister {
		return "certificate"
	}
	return "csr"
}

// IssuerPurpose is the purpose of the CA behind a batch in key mode m: the
// factory's manufacturing CA, or the maker's own for key mode register.
func IssuerPurpose(m mfg.KeyMode) pki.Purpose {
	if m == mfg.KeyModeRegister {
		return ca.PurposeExternal
	}
	return pki.PurposeManufacturing
}

// anchorsOf is a fixed pki.TrustSource.
type anchorsOf pki.Anchors

func (a anchorsOf) Anchors(context.Context) (pki.Anchors, error) { return pki.Anchors(a), nil }

// notRevoked is the revocation checker of certificates being registered.
type notRevoked struct{}

func (notRevoked) IsRevoked(context.Context, *x509.Certificate, *big.Int) (bool, error) {
	return false, nil
}

// unit is one row on its way through the processor.
type unit struct {
	row mfg.Row
	dev *fleet.Device
	pub crypto.PublicKey
	fp  string
	// cert is the birth certificate issued or registered for a new unit.
	cert   *x509.Certificate
	record *store.Certificate
	keyPEM string
	// stored is the registered device of a unit that exists already,
	// birth its birth certificate if it has one.
	stored *fleet.Device
	birth  *store.Certificate
	// mine is the claim of the first row with this model and serial; first
	// is set instead when an earlier row has it.
	mine, first *claim
	// res is the unit's result once decided; Status is empty before.
	res mfg.Result
}

func (u *unit) decided() bool { return u.res.Status != "" }

func (u *unit) fail(err error) {
	u.res = mfg.ErrorResult(u.row, err)
}

func (u *unit) failf(code, field, format string, args ...any) {
	u.fail(&mfg.RowError{Line: u.row.Line, Serial: u.row.Serial, Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
}

// read cuts the manifest into chunks. A manifest that cannot be read any
// further ends the run; io.EOF ends it well.
func (r *run) read(ctx context.Context, mr *mfg.ManifestReader, out chan<- []*unit) error {
	size := r.p.opts.ChunkSize
	c := make([]*unit, 0, size)
	send := func() bool {
		select {
		case out <- c:
			c = make([]*unit, 0, size)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		row, err := mr.Next()
		if errors.Is(err, io.EOF) {
			if len(c) > 0 {
				send()
			}
			return nil
		}
		if err != nil {
			return err
		}
		c = append(c, &unit{row: row})
		if len(c) == size && !send() {
			return nil
		}
	}
}

// lookup links units repeating an earlier row of the batch to it and finds
// the units registered before, with their birth certificates.
func (r *run) lookup(ctx context.Context, c []*unit) error {
	var fresh []*unit
	var ds []*fleet.Device
	for _, u := range c {
		if u.row.Err != nil {
			u.fail(u.row.Err)
			continue
		}
		k := [2]string{u.row.Model, u.row.Serial}
		if first, ok := r.byKey[k]; ok {
			u.first = first
			continue
		}
		u.mine = &claim{line: u.row.Line}
		r.byKey[k] = u.mine
		// Keys that cannot be stored are not looked up; their rows fail
		// their check.
		if fleet.ValidName("serial", k[1]) == nil && fleet.ValidName("model", k[0]) == nil {
			fresh = append(fresh, u)
			ds = append(ds, &fleet.Device{Identity: fleet.Identity{Factory: r.b.Factory.Name, Model: k[0], Serial: k[1]}})
		}
	}
	if len(ds) == 0 {
		return nil
	}
	stored, err := r.p.reg.ExistingDevices(ctx, ds)
	if err != nil {
		return err
	}
	var known []*unit
	for i, u := range fresh {
		if u.stored = stored[i]; u.stored != nil {
			known = append(known, u)
		}
	}
	return r.births(ctx, known)
}

// births finds the birth certificates of units registered before.
func (r *run) births(ctx context.Context, us []*unit) error {
	if len(us) == 0 {
		return nil
	}
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.stored.ID
	}
	found, err := r.p.reg.BirthCertificates(ctx, ids)
	if err != nil {
		return err
	}
	for _, u := range us {
		if b, ok := found[u.stored.ID]; ok {
			u.birth = &b
		}
	}
	return nil
}

// secure checks every unit of a chunk and gives the new ones their
// certificates (and, when minting, keys), on every core. Only a failure of
// Muster's is returned; a bad row gets its error result.
func (r *run) secure(ctx context.Context, c []*unit) error {
	now := time.Now()
	var failed atomic.Pointer[error]
	r.parallel(c, func(u *unit) {
		if u.decided() || u.first != nil {
			return
		}
		if r.check(ctx, u, now); u.decided() || u.stored != nil {
			return
		}
		if err := r.issue(ctx, u); err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	})
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// check turns a row into its device and reads its public key, on a worker.
func (r *run) check(ctx context.Context, u *unit, now time.Time) {
	f := r.b.Factory
	d, err := u.row.Device(f, r.b.ID, now, r.b.BOMs)
	if err != nil {
		u.fail(err)
		return
	}
	d.Lifecycle.Changes[0].Actor = r.b.Actor
	u.dev = d
	row := u.row
	if u.stored != nil {
		return // registered before: nothing will be issued
	}
	switch r.b.KeyMode {
	case mfg.KeyModeCSR:
		switch {
		case row.Certificate != "":
			u.failf(mfg.CodeValidation, "certificate", "the row carries a certificate, but the batch signs CSRs; submit it with key mode register to a factory with its own CA")
			return
		case row.CSR == "":
			u.failf(mfg.CodeCSRMissing, "csr", "key mode csr needs the device's CSR in the row")
			return
		}
		der, err := mfg.DecodeCSR(row.CSR)
		if err != nil {
			u.failf(mfg.CodeCSRInvalid, "csr", "%v", err)
			return
		}
		csr, err := pki.CheckCSR(der, r.p.opts.CSRRules)
		if err != nil {
			var ce *pki.CSRError
			if errors.As(err, &ce) {
				u.failf(mfg.CodeCSRInvalid, "csr", "CSR refused (%s): %s", ce.Code, ce.Reason)
			} else {
				u.failf(mfg.CodeCSRInvalid, "csr", "%v", err)
			}
			return
		}
		u.pub = csr.PublicKey
	case mfg.KeyModeMint:
		if row.CSR != "" || row.Certificate != "" {
			u.failf(mfg.CodeValidation, "csr", "the row carries a CSR or certificate, but the batch mints keys; submit it with key mode csr instead")
			return
		}
		return // the key is made only if the unit turns out to be new
	case mfg.KeyModeRegister:
		if row.CSR != "" {
			u.failf(mfg.CodeValidation, "csr", "the row carries a CSR, but the factory's own CA issues its certificates; put the certificate in the row")
			return
		}
		if row.Certificate == "" {
			u.failf(mfg.CodeCertMissing, "certificate", "key mode register needs the birth certificate the maker's CA issued, in the row")
			return
		}
		cert, err := ca.ParseCertificatePEM([]byte(row.Certificate))
		if err != nil {
			u.failf(mfg.CodeCertInvalid, "certificate", "%v", err)
			return
		}
		id, err := r.verifier.Verify(ctx, []*x509.Certificate{cert}, now)
		if err != nil {
			u.failf(mfg.CodeCertInvalid, "certificate", "not a birth certificate of factory %s's CA: %v", f.Name, err)
			return
		}
		if id.Serial != row.Serial {
			u.failf(mfg.CodeCertInvalid, "certificate", "the certificate is for serial %q, the row for %q", id.Serial, row.Serial)
			return
		}
		u.pub, u.cert = cert.PublicKey, cert
	}
	if u.fp, err = pki.PublicKeyFingerprint(u.pub); err != nil {
		u.failf(mfg.CodeCSRInvalid, "csr", "%v", err)
	}
}

// profile is the birth certificate profile of a row.
func (r *run) profile(row mfg.Row) pki.BirthProfile {
	return pki.BirthProfile{Factory: r.b.Factory.Name, Model: row.Model, Serial: row.Serial,
		HardwareRevision: row.HardwareRevision, Validity: r.p.opts.BirthValidity}
}

// issue gives a new unit its birth certificate (and, when minting, its
// key), on a worker. Only Muster's own failures are returned.
func (r *run) issue(ctx context.Context, u *unit) error {
	if r.b.KeyMode == mfg.KeyModeMint {
		key, err := pki.GenerateKey(r.p.opts.MintAlgorithm)
		if err != nil {
			return fmt.Errorf("batch: mint a key: %w", err)
		}
		if u.keyPEM, err = mfg.KeyPEM(key); err != nil {
			return err
		}
		u.pub = key.Public()
		if u.fp, err = pki.PublicKeyFingerprint(u.pub); err != nil {
			return err
		}
	}
	if u.cert == nil {
		profile := r.profile(u.row)
		cert, err := r.issuer.Signer.Issue(ctx, profile, u.pub)
		if err != nil {
			// A profile the row cannot fill (an over-long serial, say) is
			// the row's fault; it is looked for only now, off the path of
			// the rows that succeed.
			if _, perr := profile.Template(time.Now()); perr != nil {
				u.failf(mfg.CodeValidation, "identity.serial", "cannot be put in a birth certificate: %v", perr)
				u.keyPEM = ""
				return nil
			}
			return fmt.Errorf("batch: issue the birth certificate of %s: %w", u.row.Serial, err)
		}
		u.cert = cert
	}
	u.record = &store.Certificate{
		CAID:        r.issuer.ID,
		Serial:      store.SerialHex(u.cert.SerialNumber),
		DeviceID:    u.dev.ID,
		Kind:        store.CertBirth,
		Fingerprint: u.fp,
		NotBefore:   u.cert.NotBefore,
		NotAfter:    u.cert.NotAfter,
		CertPEM:     mfg.CertificatePEM(u.cert.Raw),
	}
	return nil
}

// commit writes a chunk's new units with their certificates and returns
// every result of the chunk in row order.
func (r *run) commit(ctx context.Context, c []*unit) ([]mfg.Result, error) {
	var items []store.ManufactureItem
	var owners []*unit
	var fps []string
	for _, u := range c {
		if u.decided() || u.first != nil || u.stored != nil {
			continue
		}
		if line, ok := r.byKeyFP[u.fp]; ok {
			u.failf(mfg.CodeKeyReused, r.keyField(), "uses the same public key as line %d; every device needs its own key", line)
			continue
		}
		r.byKeyFP[u.fp] = u.row.Line
		fps = append(fps, u.fp)
		owners = append(owners, u)
	}
	taken, err := r.p.reg.KeyOwners(ctx, fps)
	if err != nil {
		return nil, err
	}
	var raced, reused []*unit
	for _, u := range owners {
		if _, ok := taken[u.fp]; ok {
			reused = append(reused, u)
			continue
		}
		items = append(items, store.ManufactureItem{Device: u.dev, Cert: u.record})
	}
	// A taken key may be this very unit's, registered by a concurrent
	// submission of the same manifest since the lookup.
	if len(reused) > 0 {
		ds := make([]*fleet.Device, len(reused))
		for i, u := range reused {
			ds[i] = u.dev
		}
		stored, err := r.p.reg.ExistingDevices(ctx, ds)
		if err != nil {
			return nil, err
		}
		for i, u := range reused {
			if stored[i] != nil {
				u.stored, u.cert, u.record, u.keyPEM = stored[i], nil, nil, ""
				raced = append(raced, u)
				continue
			}
			u.failf(mfg.CodeKeyReused, r.keyField(), "the public key is already certified for another device; every device needs its own key")
		}
	}
	owners = slices.DeleteFunc(owners, func(u *unit) bool { return u.decided() || u.stored != nil })
	for len(items) > 0 {
		inserted, err := r.p.reg.ManufactureDevices(ctx, items, r.b.Actor)
		var kr *store.KeyReuseError
		if errors.As(err, &kr) {
			// Another submission certified the key since the lookup.
			owners[kr.Index].failf(mfg.CodeKeyReused, r.keyField(), "the public key is already certified for another device; every device needs its own key")
			items = slices.Delete(items, kr.Index, kr.Index+1)
			owners = slices.Delete(owners, kr.Index, kr.Index+1)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("batch: register units: %w", err)
		}
		for i, ok := range inserted {
			if !ok {
				// Registered by a concurrent submission since the lookup:
				// the unit is theirs, with their certificate.
				u := owners[i]
				u.stored, u.cert, u.record, u.keyPEM = items[i].Device, nil, nil, ""
				raced = append(raced, u)
			}
		}
		break
	}
	if err := r.births(ctx, raced); err != nil {
		return nil, err
	}
	// Repeats come last: the row they repeat may be earlier in this chunk.
	var repeats []*unit
	for _, u := range c {
		if u.first != nil {
			repeats = append(repeats, u)
			continue
		}
		if err := r.finish(ctx, u); err != nil {
			return nil, err
		}
	}
	if err := r.finishRepeats(ctx, repeats); err != nil {
		return nil, err
	}
	results := make([]mfg.Result, len(c))
	for i, u := range c {
		results[i] = u.res
	}
	return results, nil
}

// finish decides the result of a unit that is not a repeat and records it
// for the rows that repeat it.
func (r *run) finish(ctx context.Context, u *unit) error {
	if !u.decided() {
		row := u.row
		res := mfg.Result{Line: row.Line, Serial: row.Serial, Model: row.Model}
		switch {
		case u.stored != nil:
			res.Status, res.DeviceID = mfg.StatusExists, u.stored.ID
			res.Message = "registered before; this is its birth certificate, no new one was issued"
			if u.birth == nil {
				res.Message = "registered before without a birth certificate; none was issued"
				break
			}
			chain, err := r.chain(ctx, u.birth.CAID)
			if err != nil {
				return err
			}
			res.CertificatePEM = u.birth.CertPEM + chain
		default:
			chain, err := r.chain(ctx, u.record.CAID)
			if err != nil {
				return err
			}
			res.Status, res.DeviceID, res.CertificatePEM, res.KeyPEM = mfg.StatusOK, u.dev.ID, u.record.CertPEM+chain, u.keyPEM
		}
		u.res = res
	}
	if u.mine != nil {
		u.mine.res = u.res
		u.mine.res.CertificatePEM, u.mine.res.KeyPEM = "", ""
	}
	return nil
}

// finishRepeats answers rows that repeat an earlier row of the batch: as
// that row was answered, with its device and its birth certificate.
func (r *run) finishRepeats(ctx context.Context, us []*unit) error {
	var known []*unit
	for _, u := range us {
		first := u.first.res
		if first.Status == mfg.StatusError {
			u.failf(first.Code, first.Field, "repeats line %d, which was refused: %s", u.first.line, first.Message)
			continue
		}
		u.stored = &fleet.Device{ID: first.DeviceID}
		known = append(known, u)
	}
	if err := r.births(ctx, known); err != nil {
		return err
	}
	for _, u := range known {
		if err := r.finish(ctx, u); err != nil {
			return err
		}
		u.res.Message = fmt.Sprintf("repeats line %d of this manifest; no second certificate was issued", u.first.line)
	}
	return nil
}

// chain is the PEM of the CA that issued a stored certificate, which goes
// with it so a device can present its whole chain. An external CA's is not
// added: the maker ships its own chain.
func (r *run) chain(ctx context.Context, caID string) (string, error) {
	if pem, ok := r.chains[caID]; ok {
		return pem, nil
	}
	pem := ""
	if r.b.KeyMode != mfg.KeyModeRegister {
		cert, err := r.p.cas.Certificate(ctx, caID)
		if err != nil {
			return "", fmt.Errorf("batch: issuer of a stored certificate: %w", err)
		}
		pem = mfg.CertificatePEM(cert.Raw)
	}
	r.chains[caID] = pem
	return pem, nil
}

// parallel runs fn on every unit of us on the processor's workers.
func (r *run) parallel(us []*unit, fn func(*unit)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.p.opts.Workers, len(us)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(us) {
					return
				}
				fn(us[i])
			}
		})
	}
	wg.Wait()
}
