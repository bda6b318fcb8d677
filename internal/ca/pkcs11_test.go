package ca

import (
	"context"
	"github.com/muster-iot/muster/internal/pki/softhsmtest"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// softHSMToken initialises a fresh SoftHSM2 token and returns how to open it.
func softHSMToken(t *testing.T) pki.PKCS11Config {
	t.Helper()
	module := softhsmtest.Token(t, "muster-ca")
	return pki.PKCS11Config{ModulePath: module, TokenLabel: "muster-ca", PIN: softhsmtest.PIN}
}

// TestPKCS11Hierarchy bootstraps the whole hierarchy, a factory CA and a
// rotation with every key on a PKCS#11 token, then starts again from the
// token and issues from the loaded keys.
func TestPKCS11Hierarchy(t *testing.T) {
	ctx := context.Background()
	cfg := softHSMToken(t)
	st := openStore(t, nil)
	hsm, err := pki.NewPKCS11KeyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, st, hsm, Options{KeyAlgorithm: pki.ECDSAP384})
	if err != nil {
		t.Fatalf("Open on the token: %v", err)
	}
	if _, err := r.AddFactory(ctx, managed("hsm-line"), "admin/a"); err != nil {
		t.Fatalf("AddFactory: %v", err)
	}
	if _, err := r.Rotate(ctx, pki.PurposeOperational, "", time.Hour, "admin/a"); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if err := hsm.Close(); err != nil {
		t.Fatal(err)
	}

	hsm, err = pki.NewPKCS11KeyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hsm.Close()
	again, err := Open(ctx, st, hsm, Options{})
	if err != nil {
		t.Fatalf("second Open on the token: %v", err)
	}
	if rows, _ := st.ListCAs(ctx, store.CAFilter{}); len(rows) != 5 {
		t.Fatalf("%d CAs, want root, operational (two generations), server and the factory's", len(rows))
	}
	cert := issueBirth(t, again, "hsm-line", "SN-HSM-1")
	if _, err := verify(t, again, cert, time.Now()); err != nil {
		t.Fatalf("birth certificate signed on the token: %v", err)
	}
}
