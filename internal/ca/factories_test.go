package ca

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

func managed(name string) FactoryRequest {
	return FactoryRequest{Factory: store.Factory{Name: name, Models: []string{"m1"}, SerialPattern: "SN-.*", CAMode: "managed"}}
}

// TestManagedFactoryChainsVerifyWithOpenSSL registers a managed factory,
// issues a birth certificate from its CA and checks it the way the README
// tells users to: openssl verify against the exported chains.
func TestManagedFactoryChainsVerifyWithOpenSSL(t *testing.T) {
	ctx := context.Background()
	r, st, _ := testRegistry(t, Options{})
	a, err := r.AddFactory(ctx, managed("acme"), "admin/a")
	if err != nil {
		t.Fatalf("AddFactory: %v", err)
	}
	if a.Purpose != "manufacturing" || a.Factory != "acme" || a.Signer == nil || !strings.Contains(a.Cert.Subject.String(), "factory acme") {
		t.Fatalf("factory CA = %+v %s", a.CA, a.Cert.Subject)
	}
	if _, err := r.AddFactory(ctx, managed("acme"), "admin/a"); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("second AddFactory = %v, want ErrDuplicate", err)
	}
	evs, _ := st.History(ctx, fleet.FleetSubject)
	if last := evs[len(evs)-1]; last.Type != store.EventFactoryCreated || !strings.Contains(string(last.Data), a.ID) {
		t.Errorf("last audit event %s %s", last.Type, last.Data)
	}

	cert := issueBirth(t, r, "acme", "SN-1")
	id, err := verify(t, r, cert, time.Now())
	if err != nil || id.Factory != "acme" || id.Serial != "SN-1" {
		t.Fatalf("birth certificate: %+v, %v", id, err)
	}
	chains, err := r.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	dir := t.TempDir()
	for _, c := range chains {
		name := string(c.Purpose)
		if c.Factory != "" {
			name += "-" + c.Factory
		}
		names = append(names, name)
		writeFile(t, dir, name+".pem", []byte(c.PEM))
	}
	if want := "root server operational manufacturing-acme"; strings.Join(names, " ") != want {
		t.Fatalf("chains %v, want %s", names, want)
	}
	writeFile(t, dir, "birth.crt", certPEM(cert))
	out := openssl(t, dir, false, "verify", "-CAfile", "root.pem", "-untrusted", "manufacturing-acme.pem", "birth.crt")
	if !strings.Contains(out, "birth.crt: OK") {
		t.Errorf("openssl verify: %s", out)
	}
	// The operational chain does not vouch for a birth certificate's issuer.
	openssl(t, dir, true, "verify", "-CAfile", "root.pem", "-untrusted", "operational.pem", "birth.crt")
}

// TestExternalFactoryPossession registers a maker's CA made with openssl,
// after the maker proves it holds the CA key, and refuses wrong, expired
// and used nonces.
func TestExternalFactoryPossession(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r, _, _ := testRegistry(t, Options{Now: clk.now})
	dir := t.TempDir()
	openssl(t, dir, false, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "maker.key", "-out", "maker.pem", "-days", "3650", "-subj", "/O=Maker Inc/CN=Maker IDevID CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
	// verification makes the certificate that proves possession for nonce.
	verification := func(nonce string) []byte {
		t.Helper()
		openssl(t, dir, false, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "verif.key", "-subj", "/CN="+nonce, "-out", "verif.csr")
		openssl(t, dir, false, "x509", "-req", "-in", "verif.csr", "-CA", "maker.pem", "-CAkey", "maker.key", "-days", "1", "-out", "verif.pem")
		return readFile(t, filepath.Join(dir, "verif.pem"))
	}
	makerPEM := readFile(t, filepath.Join(dir, "maker.pem"))
	external := func(name, nonce string, verif []byte) (*Authority, error) {
		return r.AddFactory(ctx, FactoryRequest{
			Factory:   store.Factory{Name: name, Models: []string{"m1"}, SerialPattern: ".*", CAMode: "external"},
			CACertPEM: makerPEM, VerificationCertPEM: verif, Nonce: nonce,
		}, "admin/a")
	}

	c, err := r.Challenge(ctx, "maker", 0, "admin/a")
	if err != nil || len(c.Nonce) != 64 || c.ExpiresAt.Sub(clk.now()).Round(time.Second) != DefaultChallengeTTL {
		t.Fatalf("Challenge = %+v, %v", c, err)
	}
	// A verification certificate for another nonce proves nothing.
	if _, err := external("maker", c.Nonce, verification(strings.Repeat("ab", 32))); !errors.Is(err, pki.ErrPossession) {
		t.Fatalf("wrong nonce in the certificate: %v, want ErrPossession", err)
	}
	// A certificate naming an unknown nonce is refused by the store.
	other := pki.NewPossessionChallenge()
	if _, err := external("maker", other, verification(other)); !errors.Is(err, store.ErrChallenge) {
		t.Fatalf("unknown nonce: %v, want ErrChallenge", err)
	}
	a, err := external("maker", c.Nonce, verification(c.Nonce))
	if err != nil {
		t.Fatalf("AddFactory(external): %v", err)
	}
	if a.Purpose != string(PurposeExternal) || a.KeyLabel != "" || a.Signer != nil || a.Cert.Subject.CommonName != "Maker IDevID CA" {
		t.Fatalf("external CA = %+v", a.CA)
	}
	if _, err := external("maker2", c.Nonce, verification(c.Nonce)); !errors.Is(err, store.ErrChallenge) {
		t.Fatalf("used nonce: %v, want ErrChallenge", err)
	}
	late, _ := r.Challenge(ctx, "maker3", time.Minute, "admin/a")
	clk.advance(2 * time.Minute)
	if _, err := external("maker3", late.Nonce, verification(late.Nonce)); err == nil {
		t.Fatal("expired nonce accepted")
	}
	if _, err := r.Challenge(ctx, "maker4", MaxChallengeTTL+time.Second, "admin/a"); err == nil {
		t.Error("Challenge accepted a lifetime over the maximum")
	}

	anchors, err := r.Anchors(ctx)
	if err != nil || len(anchors.ExternalManufacturers) != 1 || !anchors.ExternalManufacturers[0].Equal(a.Cert) {
		t.Fatalf("external anchors = %v, %v", anchors.ExternalManufacturers, err)
	}
	issuer, err := r.IssuerFor(ctx, PurposeExternal, "maker")
	if err != nil || issuer.ID != a.ID || issuer.Signer != nil {
		t.Fatalf("IssuerFor(external) = %+v, %v", issuer, err)
	}

	// A device certificate the maker signed verifies as an external birth
	// identity.
	openssl(t, dir, false, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "dev.key", "-subj", "/serialNumber=MK-1/CN=MK-1", "-out", "dev.csr")
	writeFile(t, dir, "ext.cnf", []byte("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"))
	openssl(t, dir, false, "x509", "-req", "-in", "dev.csr", "-CA", "maker.pem", "-CAkey", "maker.key", "-days", "365",
		"-extfile", "ext.cnf", "-out", "dev.pem")
	dev, err := ParseCertificatePEM(readFile(t, filepath.Join(dir, "dev.pem")))
	if err != nil {
		t.Fatal(err)
	}
	id, err := verify(t, r, dev, clk.now())
	if err != nil || !id.External || id.Serial != "MK-1" {
		t.Fatalf("maker-issued device certificate: %+v, %v", id, err)
	}
}
