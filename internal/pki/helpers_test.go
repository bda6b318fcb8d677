package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const testPassphrase = "correct horse battery staple"

// newTestKeyStore returns a file key store with a cheap KDF so tests stay
// fast; the KDF itself is exercised against openssl in signer_file_test.
func newTestKeyStore(t testing.TB) *FileKeyStore {
	t.Helper()
	ks, err := NewFileKeyStore(t.TempDir(), []byte(testPassphrase), WithPBKDF2Iterations(minPBKDF2Iterations))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// hierarchy is a complete Muster CA tree for tests.
type hierarchy struct {
	ks                    *FileKeyStore
	root, mfg, op, server *CA
}

const testCAValidity = 10 * 365 * 24 * time.Hour

func newHierarchy(t testing.TB) *hierarchy {
	t.Helper()
	ctx := context.Background()
	h := &hierarchy{ks: newTestKeyStore(t)}
	var err error
	h.root, err = NewRootCA(ctx, h.ks, "root", ECDSAP256, pkix.Name{Organization: []string{"Muster Test"}}, testCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	h.mfg, err = h.root.NewSubCA(ctx, h.ks, "mfg-f1", PurposeManufacturing, ECDSAP256,
		pkix.Name{CommonName: "Muster Manufacturing CA f1", OrganizationalUnit: []string{"Muster manufacturing CA for factory f1"}}, testCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	h.op, err = h.root.NewSubCA(ctx, h.ks, "operational", PurposeOperational, ECDSAP256, pkix.Name{}, testCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	h.server, err = h.root.NewSubCA(ctx, h.ks, "server", PurposeServer, ECDSAP256, pkix.Name{}, testCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue issues under profile for a fresh P-256 key.
func issue(t testing.TB, ca *CA, p Profile) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newP256(t)
	cert, err := ca.Issue(context.Background(), p, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// signRaw lets tests create certificates no profile would produce, to
// prove that the verifying side refuses them.
func signRaw(t testing.TB, ca *CA, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = randomSerial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// writeFile writes data into dir and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// openssl runs the openssl binary and returns its combined output. It fails
// the test if openssl fails, unless wantFail is set.
func openssl(t testing.TB, wantFail bool, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl binary not installed")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("openssl %v: err=%v, wantFail=%v\n%s", args, err, wantFail, out)
	}
	return string(out)
}

func newP224(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
