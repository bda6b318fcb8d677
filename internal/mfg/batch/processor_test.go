package batch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// line is a factory line for processor tests: a SQLite registry, its CAs
// and the managed factory acme (models m1, m2; serials SN-00000).
type line struct {
	st  *store.Store
	cas *ca.Registry
	p   *Processor
	f   *mfg.Factory
}

func newLine(t testing.TB, opts Options) *line {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := pki.NewFileKeyStore(t.TempDir(), []byte("test passphrase"), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := ca.Open(ctx, st, ks, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sf := store.Factory{Name: "acme", Models: []string{"m1", "m2"}, SerialPattern: "SN-[0-9]{5}", CAMode: mfg.CAManaged}
	if _, err := reg.AddFactory(ctx, ca.FactoryRequest{Factory: sf}, "admin/test"); err != nil {
		t.Fatal(err)
	}
	f, err := mfg.NewFactory(mfg.Factory{Name: sf.Name, Models: sf.Models, SerialPattern: sf.SerialPattern})
	if err != nil {
		t.Fatal(err)
	}
	return &line{st: st, cas: reg, p: NewProcessor(st, reg, opts), f: f}
}

// submit runs a JSON lines manifest through the processor.
func (l *line) submit(t testing.TB, f *mfg.Factory, mode mfg.KeyMode, manifest string) ([]mfg.Result, mfg.Summary) {
	t.Helper()
	res, sum, err := l.try(f, mode, manifest)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, sum
}

func (l *line) try(f *mfg.Factory, mode mfg.KeyMode, manifest string) ([]mfg.Result, mfg.Summary, error) {
	mr, err := mfg.NewManifestReader(strings.NewReader(manifest), mfg.FormatJSONL)
	if err != nil {
		return nil, mfg.Summary{}, err
	}
	var out []mfg.Result
	sum, err := l.p.Run(context.Background(), Submission{ID: "B-1", Factory: f, KeyMode: mode, Actor: "manufacturer/line-1"}, mr,
		func(rs []mfg.Result) error {
			out = append(out, rs...)
			return nil
		})
	return out, sum, err
}

// csrRows is a JSON lines manifest of n units from SN-<from+1> on, each
// with a CSR for a fresh key.
func csrRows(t testing.TB, from, n int) string {
	t.Helper()
	var b strings.Builder
	o := mfg.GenerateOptions{Model: "m1", HardwareRevision: "r2", Count: n, Start: from + 1, Digits: 5, Format: mfg.FormatJSONL, WithCSR: true}
	if err := mfg.GenerateManifest(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func leafKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// csrPEM is a PEM CSR for key.
func csrPEM(t testing.TB, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// certsOf parses the PEM certificates of a result: leaf first.
func certsOf(t testing.TB, text string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestBatchRegistersOnceAcrossChunks(t *testing.T) {
	l := newLine(t, Options{ChunkSize: 7, BirthValidity: 5 * 8766 * time.Hour})
	manifest := csrRows(t, 0, 30)
	// Line 31 repeats line 3: same unit, no second certificate.
	manifest += strings.Split(manifest, "\n")[2] + "\n"
	res, sum := l.submit(t, l.f, mfg.KeyModeCSR, manifest)
	if len(res) != 31 || sum.OK != 30 || sum.Existing != 1 || sum.Errors != 0 {
		t.Fatalf("%d results, summary %+v", len(res), sum)
	}
	v, err := pki.NewVerifier(l.cas, notRevoked{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:30] {
		if r.Line != i+1 || r.Status != mfg.StatusOK || !strings.HasPrefix(r.DeviceID, "dev_") || r.KeyPEM != "" {
			t.Fatalf("result %d = %+v", i, r)
		}
		chain := certsOf(t, r.CertificatePEM)
		if len(chain) != 2 {
			t.Fatalf("line %d: %d certificates, want the birth certificate and its CA", r.Line, len(chain))
		}
		id, err := v.Verify(context.Background(), chain, time.Now())
		if err != nil || id.Kind != pki.IdentityBirth || id.Factory != "acme" || id.Serial != r.Serial || id.Model != "m1" || id.HardwareRevision != "r2" {
			t.Fatalf("line %d: identity %+v, %v", r.Line, id, err)
		}
		if years := chain[0].NotAfter.Sub(chain[0].NotBefore).Hours() / 8766; years < 4.99 || years > 5.01 {
			t.Errorf("line %d: validity %.2f years, want the configured 5", r.Line, years)
		}
	}
	if dup := res[30]; dup.Status != mfg.StatusExists || dup.DeviceID != res[2].DeviceID || dup.CertificatePEM != res[2].CertificatePEM {
		t.Fatalf("repeated row = %+v", dup)
	}
	d, err := l.st.GetDevice(context.Background(), res[5].DeviceID)
	if err != nil || d.Lifecycle.State != fleet.StateManufactured || d.Identity.Batch != "B-1" || d.Lifecycle.Changes[0].Actor != "manufacturer/line-1" {
		t.Fatalf("device = %+v, %v", d, err)
	}
	evs, _ := l.st.History(context.Background(), d.ID)
	if len(evs) != 1 || evs[0].Type != fleet.EventCreated || evs[0].Actor != "manufacturer/line-1" {
		t.Fatalf("history = %+v", evs)
	}

	// The same manifest again: every unit exists, with the same device and
	// the same certificate, and nothing new is issued.
	again, sum := l.submit(t, l.f, mfg.KeyModeCSR, manifest)
	if sum.Existing != 31 || sum.OK != 0 {
		t.Fatalf("resubmission summary %+v", sum)
	}
	for i, r := range again {
		if r.DeviceID != res[i].DeviceID || r.CertificatePEM != res[i].CertificatePEM {
			t.Fatalf("line %d on resubmission: %+v, first %+v", r.Line, r, res[i])
		}
	}
	certs, _ := l.st.CertificatesByDevice(context.Background(), res[0].DeviceID)
	if len(certs) != 1 {
		t.Errorf("device has %d certificates after a resubmission, want 1", len(certs))
	}
}

func TestBatchMintKeysMatchCertificates(t *testing.T) {
	l := newLine(t, Options{})
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, `{"serial":"SN-%05d","model":"m2"}`+"\n", i)
	}
	res, sum := l.submit(t, l.f, mfg.KeyModeMint, b.String())
	if sum.OK != 5 {
		t.Fatalf("summary %+v", sum)
	}
	for _, r := range res {
		block, _ := pem.Decode([]byte(r.KeyPEM))
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Fatalf("line %d: key %q", r.Line, r.KeyPEM)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		cert := certsOf(t, r.CertificatePEM)[0]
		if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
			t.Errorf("line %d: the minted key does not match its certificate", r.Line)
		}
	}
	again, _ := l.submit(t, l.f, mfg.KeyModeMint, b.String())
	if again[0].Status != mfg.StatusExists || again[0].KeyPEM != "" || again[0].CertificatePEM != res[0].CertificatePEM {
		t.Errorf("resubmitted minted unit = %+v", again[0])
	}
	if _, _, err := l.try(l.f, mfg.KeyModeRegister, b.String()); err == nil {
		t.Error("key mode register accepted for a factory whose CA Muster runs")
	}
}

func TestBatchRefusesReusedKeys(t *testing.T) {
	l := newLine(t, Options{})
	key := leafKey(t)
	csr := func(string) string { return csrPEM(t, key) }
	manifest := mustJSON(t, mfg.Row{Serial: "SN-00001", Model: "m1", CSR: csr("a")}) + "\n" +
		mustJSON(t, mfg.Row{Serial: "SN-00002", Model: "m1", CSR: csr("b")}) + "\n"
	res, _ := l.submit(t, l.f, mfg.KeyModeCSR, manifest)
	if res[0].Status != mfg.StatusOK || res[1].Code != mfg.CodeKeyReused || !strings.Contains(res[1].Message, "line 1") {
		t.Fatalf("results %+v", res)
	}
	res, _ = l.submit(t, l.f, mfg.KeyModeCSR, mustJSON(t, mfg.Row{Serial: "SN-00003", Model: "m1", CSR: csr("c")})+"\n")
	if res[0].Code != mfg.CodeKeyReused || strings.Contains(res[0].Message, "dev_") {
		t.Fatalf("key of a registered device: %+v", res[0])
	}
}

// TestBatchConcurrentSubmissions submits one manifest twice at once: every
// unit is registered and certified once, and both submissions learn it.
func TestBatchConcurrentSubmissions(t *testing.T) {
	l := newLine(t, Options{ChunkSize: 10})
	manifest := csrRows(t, 0, 60)
	var results [2][]mfg.Result
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i], _ = l.submit(t, l.f, mfg.KeyModeCSR, manifest) })
	}
	wg.Wait()
	for i := range results[0] {
		a, b := results[0][i], results[1][i]
		if a.DeviceID == "" || a.DeviceID != b.DeviceID || a.CertificatePEM != b.CertificatePEM || a.Status == b.Status && a.Status != mfg.StatusExists {
			t.Fatalf("line %d: %+v and %+v", a.Line, a, b)
		}
	}
	var n int
	if err := l.st.DB().QueryRow("SELECT COUNT(*) FROM certificates").Scan(&n); err != nil || n != 60 {
		t.Fatalf("%d certificates, want 60 (%v)", n, err)
	}
}

// TestBatchRegistersExternalCertificates registers a maker's CA (made in Go
// here; the ca package does it with openssl) and a batch of the birth
// certificates it issued.
func TestBatchRegistersExternalCertificates(t *testing.T) {
	ctx := context.Background()
	l := newLine(t, Options{})
	makerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	makerTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Maker CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	makerDER, _ := x509.CreateCertificate(rand.Reader, makerTmpl, makerTmpl, makerKey.Public(), makerKey)
	maker, _ := x509.ParseCertificate(makerDER)
	sign := func(cn string, serial int64, issuer *x509.Certificate, key *ecdsa.PrivateKey) string {
		leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, SerialNumber: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, issuer, leaf.Public(), key)
		return mfg.CertificatePEM(der)
	}
	c, err := l.cas.Challenge(ctx, "maker", 0, "admin/test")
	if err != nil {
		t.Fatal(err)
	}
	sf := store.Factory{Name: "maker", Models: []string{"m1"}, SerialPattern: "MK-[0-9]+", CAMode: mfg.CAExternal}
	if _, err := l.cas.AddFactory(ctx, ca.FactoryRequest{Factory: sf, CACertPEM: []byte(mfg.CertificatePEM(makerDER)),
		VerificationCertPEM: []byte(sign(c.Nonce, 99, maker, makerKey)), Nonce: c.Nonce}, "admin/test"); err != nil {
		t.Fatalf("AddFactory: %v", err)
	}
	f, _ := mfg.NewFactory(mfg.Factory{Name: sf.Name, Models: sf.Models, SerialPattern: sf.SerialPattern, CAMode: mfg.CAExternal})

	strangerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	strangerTmpl := *makerTmpl
	strangerDER, _ := x509.CreateCertificate(rand.Reader, &strangerTmpl, &strangerTmpl, strangerKey.Public(), strangerKey)
	stranger, _ := x509.ParseCertificate(strangerDER)
	manifest := strings.Join([]string{
		mustJSON(t, mfg.Row{Serial: "MK-1", Model: "m1", Certificate: sign("MK-1", 10, maker, makerKey)}),
		mustJSON(t, mfg.Row{Serial: "MK-2", Model: "m1", Certificate: sign("MK-2", 11, stranger, strangerKey)}),
		mustJSON(t, mfg.Row{Serial: "MK-3", Model: "m1", Certificate: sign("MK-4", 12, maker, makerKey)}),
		mustJSON(t, mfg.Row{Serial: "MK-5", Model: "m1"}),
		mustJSON(t, mfg.Row{Serial: "MK-6", Model: "m1", CSR: csrPEM(t, leafKey(t))}),
	}, "\n")
	res, _ := l.submit(t, f, mfg.KeyModeRegister, manifest)
	want := []string{mfg.StatusOK, mfg.CodeCertInvalid, mfg.CodeCertInvalid, mfg.CodeCertMissing, mfg.CodeValidation}
	for i, r := range res {
		got := r.Status
		if got == mfg.StatusError {
			got = r.Code
		}
		if got != want[i] {
			t.Errorf("line %d: %s (%s), want %s", r.Line, got, r.Message, want[i])
		}
	}
	certs, _ := l.st.CertificatesByDevice(ctx, res[0].DeviceID)
	if len(certs) != 1 || certs[0].Serial != "a" || certsOf(t, res[0].CertificatePEM)[0].SerialNumber.Int64() != 10 {
		t.Fatalf("registered certificate %+v", certs)
	}
	if _, _, err := l.try(f, mfg.KeyModeCSR, manifest); err == nil {
		t.Error("key mode csr accepted for a factory with its own CA")
	}
}

func TestBatchStopsWhenEmitFails(t *testing.T) {
	l := newLine(t, Options{ChunkSize: 2})
	mr, _ := mfg.NewManifestReader(strings.NewReader(csrRows(t, 0, 9)), mfg.FormatJSONL)
	boom := errors.New("client went away")
	calls := 0
	_, err := l.p.Run(context.Background(), Submission{ID: "B", Factory: l.f, KeyMode: mfg.KeyModeCSR, Actor: "a/b"}, mr, func([]mfg.Result) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("Run = %v after %d emits, want the emit error after 1", err, calls)
	}
}

// TestBatchRefusesUncertifiableSerials: a serial the factory accepts but
// that is too long for a certificate subject is the row's error, and the
// rows around it are certified.
func TestBatchRefusesUncertifiableSerials(t *testing.T) {
	l := newLine(t, Options{})
	f, err := mfg.NewFactory(mfg.Factory{Name: "acme", Models: []string{"m1"}, SerialPattern: "SN-.*"})
	if err != nil {
		t.Fatal(err)
	}
	long := "SN-" + strings.Repeat("7", 70)
	manifest := `{"serial":"SN-1","model":"m1"}` + "\n" + `{"serial":"` + long + `","model":"m1"}` + "\n" + `{"serial":"SN-3","model":"m1"}` + "\n"
	res, sum := l.submit(t, f, mfg.KeyModeMint, manifest)
	if sum.OK != 2 || res[1].Code != mfg.CodeValidation || res[1].KeyPEM != "" || !strings.Contains(res[1].Message, "birth certificate") {
		t.Fatalf("results %+v", res)
	}
}
