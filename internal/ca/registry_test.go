package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// TestOpenBootstrapsOnceThenLoads checks the first start creates the
// hierarchy with the right constraints and the next start loads it.
func TestOpenBootstrapsOnceThenLoads(t *testing.T) {
	ctx := context.Background()
	r, st, ks := testRegistry(t, Options{})
	rows, err := st.ListCAs(ctx, store.CAFilter{})
	if err != nil || len(rows) != 3 {
		t.Fatalf("CAs after bootstrap = %d, %v", len(rows), err)
	}
	root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
	if err != nil {
		t.Fatal(err)
	}
	rc := root.Cert
	if !rc.IsCA || rc.MaxPathLen != 1 || rc.Subject.CommonName != "Muster Root CA" || !strings.HasPrefix(root.KeyLabel, "root-ca_") {
		t.Errorf("root = %+v (label %s)", rc.Subject, root.KeyLabel)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rc)
	for p, eku := range map[pki.Purpose]x509.ExtKeyUsage{pki.PurposeOperational: x509.ExtKeyUsageClientAuth, pki.PurposeServer: x509.ExtKeyUsageServerAuth} {
		a, err := r.IssuerFor(ctx, p, "")
		if err != nil {
			t.Fatal(err)
		}
		c := a.Cert
		if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != eku {
			t.Errorf("%s CA: CA %v pathlen %d EKU %v", p, c.IsCA, c.MaxPathLen, c.ExtKeyUsage)
		}
		if !strings.Contains(strings.Join(c.Subject.OrganizationalUnit, ","), "Muster "+string(p)+" CA") {
			t.Errorf("%s CA subject %s does not say its purpose", p, c.Subject)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s CA does not chain to the root: %v", p, err)
		}
	}

	again, err := Open(ctx, st, ks, Options{})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	root2, _ := again.IssuerFor(ctx, pki.PurposeRoot, "")
	if root2.ID != root.ID || !root2.Signer.Certificate().Equal(rc) {
		t.Errorf("second start made a new root %s, want %s", root2.ID, root.ID)
	}
	if rows, _ := st.ListCAs(ctx, store.CAFilter{}); len(rows) != 3 {
		t.Errorf("second start wrote %d CAs, want none more", len(rows)-3)
	}
	if _, err := r.IssuerFor(ctx, pki.PurposeManufacturing, "nowhere"); !errors.Is(err, ErrNoCA) {
		t.Errorf("IssuerFor(unregistered factory) = %v, want ErrNoCA", err)
	}
}

// TestOpenRefusesUnreadableKey: a wrong passphrase stops the start and
// says which CA and what to check.
func TestOpenRefusesUnreadableKey(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, nil)
	dir := t.TempDir()
	if _, err := Open(ctx, st, fastKeys(t, dir, testPassphrase), Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, st, fastKeys(t, dir, "wrong passphrase"), Options{})
	if !errors.Is(err, pki.ErrKeyUnreadable) || !strings.Contains(err.Error(), "root CA") || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("Open with the wrong passphrase = %v, want ErrKeyUnreadable naming the root CA and the passphrase", err)
	}
	_, err = Open(ctx, st, fastKeys(t, t.TempDir(), testPassphrase), Options{})
	if !errors.Is(err, pki.ErrKeyNotFound) || !strings.Contains(err.Error(), "share key files through it") {
		t.Fatalf("Open without the keys = %v, want ErrKeyNotFound explaining shared keys", err)
	}
}

// TestConcurrentBootstrap starts nodes at once on one database and one key
// directory: one hierarchy results and every node uses it.
func TestConcurrentBootstrap(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, nil)
	dir := t.TempDir()
	const nodes = 4
	regs := make([]*Registry, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { regs[i], errs[i] = Open(ctx, st, fastKeys(t, dir, testPassphrase), Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	rows, _ := st.ListCAs(ctx, store.CAFilter{})
	if len(rows) != 3 {
		t.Fatalf("%d CAs after a concurrent bootstrap, want 3", len(rows))
	}
	want, _ := regs[0].IssuerFor(ctx, pki.PurposeOperational, "")
	for i, r := range regs[1:] {
		got, err := r.IssuerFor(ctx, pki.PurposeOperational, "")
		if err != nil || got.ID != want.ID {
			t.Errorf("node %d uses operational CA %v (%v), node 0 %s", i+1, got, err, want.ID)
		}
	}
}

// TestRotate rolls a manufacturing and the operational CA over: during the
// overlap certificates of both generations verify and only the new CA
// signs; after it the old one is retired and no longer trusted.
func TestRotate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r, st, _ := testRegistry(t, Options{Now: clk.now})
	if _, err := r.AddFactory(ctx, FactoryRequest{Factory: store.Factory{Name: "f1", Models: []string{"m1"}, SerialPattern: ".*", CAMode: "managed"}}, "admin/a"); err != nil {
		t.Fatal(err)
	}
	oldCert := issueBirth(t, r, "f1", "SN-OLD")
	old, _ := r.IssuerFor(ctx, pki.PurposeManufacturing, "f1")

	next, err := r.Rotate(ctx, pki.PurposeManufacturing, "f1", time.Hour, "admin/a")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if next.ID == old.ID || string(next.Cert.RawSubject) != string(old.Cert.RawSubject) || next.Cert.Equal(old.Cert) {
		t.Fatalf("rotated CA %s: same subject, new certificate expected", next.ID)
	}
	signer, _ := r.IssuerFor(ctx, pki.PurposeManufacturing, "f1")
	if signer.ID != next.ID {
		t.Fatalf("IssuerFor after rotation = %s, want the new CA %s", signer.ID, next.ID)
	}
	newCert := issueBirth(t, r, "f1", "SN-NEW")
	if string(newCert.AuthorityKeyId) != string(next.Cert.SubjectKeyId) {
		t.Error("a certificate issued after the rotation is not signed by the new CA")
	}
	now := clk.now()
	for name, c := range map[string]*x509.Certificate{"old": oldCert, "new": newCert} {
		if _, err := verify(t, r, c, now); err != nil {
			t.Errorf("%s generation during the overlap: %v", name, err)
		}
	}
	if _, err := r.Rotate(ctx, pki.PurposeOperational, "", 0, "admin/a"); err != nil {
		t.Fatalf("Rotate operational: %v", err)
	}
	if _, err := r.Rotate(ctx, pki.PurposeRoot, "", time.Hour, "admin/a"); err == nil {
		t.Error("Rotate accepted the root")
	}
	if _, err := r.Rotate(ctx, pki.PurposeManufacturing, "", time.Hour, "admin/a"); err == nil {
		t.Error("Rotate accepted a manufacturing rotation without a factory")
	}

	// After the overlap the old CA is retired, in the database too.
	clk.advance(time.Hour + r.opts.RefreshInterval)
	if _, err := verify(t, r, oldCert, clk.now()); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("old generation after the overlap: %v, want ErrUntrusted", err)
	}
	if _, err := verify(t, r, newCert, clk.now()); err != nil {
		t.Errorf("new generation after the overlap: %v", err)
	}
	retired, _ := st.ListCAs(ctx, store.CAFilter{Status: store.CARetired})
	if len(retired) != 2 {
		t.Errorf("%d retired CAs in the database, want the old manufacturing and operational CAs", len(retired))
	}
}
