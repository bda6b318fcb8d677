package ca

import (
	"context"
	"crypto/x509"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

const testPassphrase = "correct horse battery staple"

// fastKeys is a file key store with the cheapest KDF pki allows, so tests
// do not spend seconds in PBKDF2.
func fastKeys(t testing.TB, dir string, passphrase string) *pki.FileKeyStore {
	t.Helper()
	ks, err := pki.NewFileKeyStore(dir, []byte(passphrase), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// openStore opens a SQLite store; now is its clock (nil for time.Now).
func openStore(t testing.TB, now func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clock is a settable clock for registries.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// testRegistry opens a registry over a fresh SQLite store and key
// directory; the store shares the registry's clock.
func testRegistry(t testing.TB, opts Options) (*Registry, *store.Store, *pki.FileKeyStore) {
	t.Helper()
	st := openStore(t, opts.Now)
	ks := fastKeys(t, t.TempDir(), testPassphrase)
	r, err := Open(context.Background(), st, ks, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r, st, ks
}

// notRevoked is a revocation checker for which nothing is revoked.
type notRevoked struct{}

func (notRevoked) IsRevoked(context.Context, *x509.Certificate, *big.Int) (bool, error) {
	return false, nil
}

// verify checks cert against the registry's anchors the way the device
// listener does.
func verify(t testing.TB, r *Registry, cert *x509.Certificate, at time.Time) (pki.Identity, error) {
	t.Helper()
	v, err := pki.NewVerifier(r, notRevoked{})
	if err != nil {
		t.Fatal(err)
	}
	return v.Verify(context.Background(), []*x509.Certificate{cert}, at)
}

// issueBirth issues a birth certificate for a fresh key from factory's CA.
func issueBirth(t testing.TB, r *Registry, factory, serial string) *x509.Certificate {
	t.Helper()
	ctx := context.Background()
	a, err := r.IssuerFor(ctx, pki.PurposeManufacturing, factory)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Signer.Issue(ctx, pki.BirthProfile{Factory: factory, Model: "m1", Serial: serial}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// openssl runs the openssl binary in dir and returns its combined output,
// failing the test unless the outcome is the wanted one.
func openssl(t testing.TB, dir string, wantFail bool, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("the openssl binary is needed: apt-get install -y openssl")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("openssl %v: err=%v, wantFail=%v\n%s", args, err, wantFail, out)
	}
	return string(out)
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
