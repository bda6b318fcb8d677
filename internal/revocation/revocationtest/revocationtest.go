// Package revocationtest builds what tests of revocation and of the
// device-facing listeners need: a store, a complete CA hierarchy that is
// both a revocation.IssuerSource and a pki.TrustSource, and devices with
// birth and operational certificates recorded as issuance records them.
package revocationtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/muster-iot/muster/internal/store/pgtest"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/store"
)

// PostgresEnv names the PostgreSQL server tests use instead of SQLite.
const PostgresEnv = "MUSTER_TEST_DATABASE_URL"

// StoreURL returns where a test's store lives: a fresh SQLite file, or, when
// MUSTER_TEST_DATABASE_URL is set, a fresh PostgreSQL schema dropped when
// the test ends. Open it twice to simulate two nodes sharing a database.
func StoreURL(t testing.TB) string {
	t.Helper()
	if u := pgtest.URL(t); u != "" {
		return u
	}
	return "sqlite://" + t.TempDir() + "/muster.db"
}

// OpenStore opens the store at url and closes it when the test ends.
func OpenStore(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: url})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The ids the hierarchy's CAs are filed under.
const (
	RootID          = "ca-root"
	ManufacturingID = "ca-mfg"
	OperationalID   = "ca-operational"
	ServerID        = "ca-server"
)

// PKI is a CA hierarchy: a root, a manufacturing CA for Factory, an
// operational CA and a server CA.
type PKI struct {
	Factory string
	Keys    *pki.FileKeyStore

	Root, Manufacturing, Operational, Server *pki.CA

	serial *atomic.Int64
}

// NewPKI creates a hierarchy whose manufacturing CA serves factory.
func NewPKI(t testing.TB, factory string) *PKI {
	t.Helper()
	ctx := context.Background()
	ks, err := pki.NewFileKeyStore(t.TempDir(), []byte("test passphrase"), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{Factory: factory, Keys: ks, serial: new(atomic.Int64)}
	const validity = 5 * 365 * 24 * time.Hour
	if p.Root, err = pki.NewRootCA(ctx, ks, "root", pki.ECDSAP256, pkix.Name{Organization: []string{"Muster Test " + factory}}, validity); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []struct {
		dst     **pki.CA
		label   string
		purpose pki.Purpose
	}{
		{&p.Manufacturing, "mfg", pki.PurposeManufacturing},
		{&p.Operational, "operational", pki.PurposeOperational},
		{&p.Server, "server", pki.PurposeServer},
	} {
		if *sub.dst, err = p.Root.NewSubCA(ctx, ks, sub.label, sub.purpose, pki.ECDSAP256, pkix.Name{Organization: []string{"Muster Test " + factory}}, validity); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Issuers implements revocation.IssuerSource.
func (p *PKI) Issuers(context.Context) ([]revocation.Issuer, error) {
	return []revocation.Issuer{
		{ID: RootID, Certificate: p.Root.Certificate(), CA: p.Root},
		{ID: ManufacturingID, Certificate: p.Manufacturing.Certificate(), CA: p.Manufacturing},
		{ID: OperationalID, Certificate: p.Operational.Certificate(), CA: p.Operational},
		{ID: ServerID, Certificate: p.Server.Certificate(), CA: p.Server},
	}, nil
}

// Anchors implements pki.TrustSource: the manufacturing CA vouches for
// birth certificates, the operational CA for operational ones.
func (p *PKI) Anchors(context.Context) (pki.Anchors, error) {
	return pki.Anchors{
		Manufacturing: []*x509.Certificate{p.Manufacturing.Certificate()},
		Operational:   []*x509.Certificate{p.Operational.Certificate()},
	}, nil
}

// WriteRoot writes the root CA certificate as PEM into dir and returns the
// path, for openssl's -CAfile.
func (p *PKI) WriteRoot(t testing.TB, dir string) string {
	t.Helper()
	return WritePEM(t, dir, "root.pem", p.Root.Certificate())
}

// WritePEM writes certificates as PEM into dir/name and returns the path.
func WritePEM(t testing.TB, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	path := dir + "/" + name
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Credential is a device certificate with its key.
type Credential struct {
	Certificate *x509.Certificate
	Key         crypto.Signer
	// Chain is the certificate followed by its issuing CA, as a device
	// presents it.
	Chain []*x509.Certificate
}

// TLS returns the credential as a TLS client certificate.
func (c Credential) TLS() tls.Certificate {
	tc := tls.Certificate{PrivateKey: c.Key, Leaf: c.Certificate}
	for _, cert := range c.Chain {
		tc.Certificate = append(tc.Certificate, cert.Raw)
	}
	return tc
}

// Device registers a device in the PKI's factory. Serials are unique per
// hierarchy, so two hierarchies of one factory can share a store.
func (p *PKI) Device(t testing.TB, st *store.Store) *fleet.Device {
	t.Helper()
	serial := fmt.Sprintf("SN-%x-%04d", p.Root.Certificate().SerialNumber.Bytes()[:4], p.serial.Add(1))
	d := &fleet.Device{Identity: fleet.Identity{Factory: p.Factory, Model: "m1", Serial: serial}}
	if err := st.CreateDevice(context.Background(), d, "test/setup"); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return d
}

// BirthCredential issues d a birth certificate and records it.
func (p *PKI) BirthCredential(t testing.TB, st *store.Store, d *fleet.Device) Credential {
	t.Helper()
	prof := pki.BirthProfile{Factory: d.Identity.Factory, Model: d.Identity.Model, Serial: d.Identity.Serial}
	return p.issue(t, st, p.Manufacturing, ManufacturingID, d.ID, "birth", prof)
}

// OperationalCredential issues d an operational certificate and records it.
func (p *PKI) OperationalCredential(t testing.TB, st *store.Store, d *fleet.Device) Credential {
	t.Helper()
	return p.issue(t, st, p.Operational, OperationalID, d.ID, "operational", pki.OperationalProfile{DeviceID: d.ID})
}

func (p *PKI) issue(t testing.TB, st *store.Store, ca *pki.CA, caID, deviceID, kind string, prof pki.Profile) Credential {
	t.Helper()
	key := newKey(t)
	cert, err := ca.Issue(context.Background(), prof, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	Record(t, st, caID, deviceID, kind, cert)
	return Credential{Certificate: cert, Key: key, Chain: []*x509.Certificate{cert, ca.Certificate()}}
}

// ExpiredBirth issues d a birth certificate that expired yesterday and
// records it.
func (p *PKI) ExpiredBirth(t testing.TB, st *store.Store, d *fleet.Device) Credential {
	t.Helper()
	prof := pki.BirthProfile{Factory: d.Identity.Factory, Serial: d.Identity.Serial, Validity: 24 * time.Hour}
	return p.expired(t, st, prof, time.Now().Add(-48*time.Hour), "mfg", p.Manufacturing, ManufacturingID, d.ID, "birth")
}

// ExpiredOperational issues d an operational certificate that expired two
// minutes ago and records it. It was valid within the lifetime of the
// test CAs (made moments ago), as a real certificate is within its CA's.
func (p *PKI) ExpiredOperational(t testing.TB, st *store.Store, d *fleet.Device) Credential {
	t.Helper()
	prof := pki.OperationalProfile{DeviceID: d.ID, Validity: time.Minute}
	return p.expired(t, st, prof, time.Now().Add(-3*time.Minute), "operational", p.Operational, OperationalID, d.ID, "operational")
}

// expired signs prof's template as of from with the CA's key directly (no
// profile issues an expired certificate) and records it.
func (p *PKI) expired(t testing.TB, st *store.Store, prof pki.Profile, from time.Time, keyLabel string, ca *pki.CA, caID, deviceID, kind string) Credential {
	t.Helper()
	tmpl, err := prof.Template(from)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := p.Keys.Load(context.Background(), keyLabel)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	Record(t, st, caID, deviceID, kind, cert)
	return Credential{Certificate: cert, Key: key, Chain: []*x509.Certificate{cert, ca.Certificate()}}
}

// Record inserts the certificates row issuance writes for cert.
func Record(t testing.TB, st *store.Store, caID, deviceID, kind string, cert *x509.Certificate) {
	t.Helper()
	fp, err := pki.PublicKeyFingerprint(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	args := []any{caID, cert.SerialNumber.Text(16), deviceID, kind, fp, cert.NotBefore.UTC(), cert.NotAfter.UTC(),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})), time.Now().UTC().Truncate(time.Microsecond)}
	q := `INSERT INTO certificates (ca_id, serial, device_id, kind, fingerprint, not_before, not_after, cert_pem, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if st.Backend() == "postgres" {
		for i := range args {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i+1), 1)
		}
	}
	if _, err := st.DB().Exec(q, args...); err != nil {
		t.Fatalf("record certificate: %v", err)
	}
}

// ServerCertificate issues a TLS server certificate for 127.0.0.1 from the
// server CA.
func (p *PKI) ServerCertificate(context.Context) (tls.Certificate, error) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := p.Server.Issue(context.Background(), pki.ServerProfile{DNSNames: []string{"localhost"}}, key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw, p.Server.Certificate().Raw}, PrivateKey: key, Leaf: cert}, nil
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
