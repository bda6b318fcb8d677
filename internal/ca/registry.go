// Package ca is Muster's CA registry: the root, operational and server CAs
// a node bootstraps on first start, a manufacturing CA per managed factory,
// external manufacturer CAs registered as trust anchors after proof of
// possession, and CA rotation with an overlap in which both generations are
// trusted.
//
// CA certificates live in the database, so every node sharing it signs with
// and trusts the same CAs; private keys stay in a pki.KeyStore (encrypted
// files or a PKCS#11 token) under the label each CA record names. See
// docs/decisions/0006-ca-registry.md.
package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// PurposeExternal is the purpose of a maker's own IDevID CA, registered as
// the trust anchor of an external factory. Muster never holds its key.
const PurposeExternal pki.Purpose = "external"

// ErrNoCA means there is no active CA for a purpose and factory.
var ErrNoCA = errors.New("no active CA")

// Store is what the registry keeps in the database; *store.Store has it.
type Store interface {
	ListCAs(ctx context.Context, f store.CAFilter) ([]store.CA, error)
	InsertCA(ctx context.Context, ca *store.CA, actor string) error
	ReplaceCA(ctx context.Context, oldID string, retireAt time.Time, next *store.CA, actor string) error
	SetCAStatus(ctx context.Context, id, status string, retireAt *time.Time) error
	CreateFactory(ctx context.Context, nf store.NewFactory, actor string) error
	CreateChallenge(ctx context.Context, c *store.Challenge, actor string) error
}

// Default lifetimes. A manufacturing CA outlives the 20-year birth
// certificates it issues early in its life, or they would be cut short.
const (
	DefaultRootValidity          = 30 * 8766 * time.Hour
	DefaultManufacturingValidity = 25 * 8766 * time.Hour
	DefaultIssuingValidity       = 10 * 8766 * time.Hour
	// DefaultRefreshInterval is how long a node trusts its cached view of
	// the CA table before reading it again; changes made on this node are
	// seen at once.
	DefaultRefreshInterval = 30 * time.Second
)

// bootstrapActor records CAs a node creates on its own.
const bootstrapActor = "system/bootstrap"

// Options tune a Registry; the zero value is ready to use.
type Options struct {
	// KeyAlgorithm of new CA keys; pki.DefaultKeyAlgorithm when empty.
	KeyAlgorithm pki.KeyAlgorithm
	// Organization is the O of every CA subject; "Muster" when empty.
	Organization string
	// RootValidity, ManufacturingValidity and IssuingValidity (operational
	// and server CAs) default to the Default* lifetimes.
	RootValidity, ManufacturingValidity, IssuingValidity time.Duration
	// RefreshInterval defaults to DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Logger receives bootstrap and rotation messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.KeyAlgorithm == "" {
		o.KeyAlgorithm = pki.DefaultKeyAlgorithm
	}
	if o.Organization == "" {
		o.Organization = "Muster"
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.RootValidity, DefaultRootValidity},
		{&o.ManufacturingValidity, DefaultManufacturingValidity},
		{&o.IssuingValidity, DefaultIssuingValidity},
		{&o.RefreshInterval, DefaultRefreshInterval},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Authority is one CA of the registry: its record, its certificate and,
// for a CA whose key Muster holds, its signer.
type Authority struct {
	store.CA
	Cert *x509.Certificate
	// Signer signs with the CA's key; nil for external CAs.
	Signer *pki.CA
}

// Registry is the CA registry of one node. It is safe for concurrent use.
type Registry struct {
	st   Store
	ks   pki.KeyStore
	opts Options

	// view is the cached CA table; refresh serialises reloading it.
	view    atomic.Pointer[view]
	refresh sync.Mutex

	// signers are loaded CA keys by CA id. A CA's key and certificate
	// never change, so entries never go stale.
	mu      sync.Mutex
	signers map[string]*pki.CA
	// noKey are CAs whose keys this node could not load (see Issuers).
	noKey unloadable
}

// Open returns the registry over st and ks. On the first start of a
// deployment it creates the root, operational and server CAs; later it
// loads them. Every active CA's key is loaded at once, so a key that cannot
// be read (wrong passphrase or PIN, missing file) stops the start with a
// message saying which CA and what to do.
func Open(ctx context.Context, st Store, ks pki.KeyStore, opts Options) (*Registry, error) {
	opts.setDefaults()
	if _, err := pki.ParseKeyAlgorithm(string(opts.KeyAlgorithm)); err != nil {
		return nil, err
	}
	r := &Registry{st: st, ks: ks, opts: opts, signers: map[string]*pki.CA{}}
	for _, p := range []pki.Purpose{pki.PurposeRoot, pki.PurposeOperational, pki.PurposeServer} {
		if _, err := r.ensure(ctx, p); err != nil {
			return nil, err
		}
	}
	v, err := r.current(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, a := range v.cas {
		if a.Status == store.CAActive && a.KeyLabel != "" {
			if _, err := r.signer(ctx, a); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// ensure returns the active CA of a node-wide purpose, creating it when
// there is none. When another node creates it at the same moment, the
// database keeps one and this node adopts it.
func (r *Registry) ensure(ctx context.Context, p pki.Purpose) (*Authority, error) {
	a, err := r.IssuerFor(ctx, p, "")
	if !errors.Is(err, ErrNoCA) {
		return a, err
	}
	var parent *pki.CA
	if p != pki.PurposeRoot {
		root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
		if err != nil {
			return nil, err
		}
		parent = root.Signer
	}
	row, signer, err := r.create(ctx, p, "", parent)
	if err != nil {
		return nil, err
	}
	switch err := r.st.InsertCA(ctx, &row, bootstrapActor); {
	case errors.Is(err, store.ErrDuplicate):
		r.opts.Logger.WarnContext(ctx, "another node created this CA first; using its CA (the key just generated is unused)",
			"purpose", p, "unused_key_label", row.KeyLabel)
		r.invalidate()
		return r.IssuerFor(ctx, p, "")
	case err != nil:
		return nil, err
	}
	r.opts.Logger.InfoContext(ctx, "created CA", "purpose", p, "id", row.ID, "subject", signer.Certificate().Subject.String())
	r.keep(row.ID, signer)
	r.invalidate()
	return r.IssuerFor(ctx, p, "")
}

// IssuerFor returns the active CA of a purpose, for a factory when the
// purpose is manufacturing or external: the one that signs now. Its signer
// is loaded, except for external CAs, which have none. Without an active CA
// the error wraps ErrNoCA.
func (r *Registry) IssuerFor(ctx context.Context, p pki.Purpose, factory string) (*Authority, error) {
	for _, force := range []bool{false, true} {
		v, err := r.current(ctx, force)
		if err != nil {
			return nil, err
		}
		a := v.active(p, factory)
		if a == nil {
			continue // perhaps another node created it since the view was read
		}
		if a.KeyLabel == "" {
			return a, nil
		}
		signer, err := r.signer(ctx, a)
		if err != nil {
			return nil, err
		}
		out := *a
		out.Signer = signer
		return &out, nil
	}
	if factory != "" {
		return nil, fmt.Errorf("ca: %w for purpose %s of factory %q", ErrNoCA, p, factory)
	}
	return nil, fmt.Errorf("ca: %w for purpose %s", ErrNoCA, p)
}

// Certificate returns the certificate of the CA with the given id, retired
// ones included: the issuer of a stored certificate, for its chain.
func (r *Registry) Certificate(ctx context.Context, id string) (*x509.Certificate, error) {
	for _, force := range []bool{false, true} {
		v, err := r.current(ctx, force)
		if err != nil {
			return nil, err
		}
		if a := v.byID[id]; a != nil {
			return a.Cert, nil
		}
	}
	return nil, fmt.Errorf("ca: no CA with id %s: %w", id, store.ErrNotFound)
}

// List returns the CA records that match f, read from the database.
func (r *Registry) List(ctx context.Context, f store.CAFilter) ([]store.CA, error) {
	return r.st.ListCAs(ctx, f)
}

// signer returns the loaded key of a, loading it on first use.
func (r *Registry) signer(ctx context.Context, a *Authority) (*pki.CA, error) {
	r.mu.Lock()
	s := r.signers[a.ID]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := pki.LoadCA(ctx, r.ks, a.KeyLabel, []byte(a.CertPEM))
	if err != nil {
		what := a.Purpose + " CA " + a.ID
		if a.Factory != "" {
			what += " of factory " + a.Factory
		}
		return nil, fmt.Errorf("ca: load the key of the %s (label %q): %w; nodes sharing a database share key files through it and need the same CA passphrase, or share the PKCS#11 token",
			what, a.KeyLabel, err)
	}
	r.keep(a.ID, s)
	return s, nil
}

func (r *Registry) keep(id string, s *pki.CA) {
	r.mu.Lock()
	r.signers[id] = s
	r.mu.Unlock()
}

func (r *Registry) now() time.Time { return r.opts.Now() }
