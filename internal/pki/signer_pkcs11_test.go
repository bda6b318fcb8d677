package pki

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"github.com/muster-iot/muster/internal/pki/softhsmtest"
	"testing"
	"time"
)

// newSoftHSMToken initialises a fresh SoftHSM2 token and returns how to open it.
func newSoftHSMToken(t *testing.T) PKCS11Config {
	t.Helper()
	module := softhsmtest.Token(t, "muster-test")
	return PKCS11Config{ModulePath: module, TokenLabel: "muster-test", PIN: softhsmtest.PIN}
}

func TestPKCS11KeyStore(t *testing.T) {
	ctx := context.Background()
	cfg := newSoftHSMToken(t)

	ks, err := NewPKCS11KeyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root, err := NewRootCA(ctx, ks, "hsm-root", ECDSAP384, pkix.Name{Organization: []string{"HSM"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	op, err := root.NewSubCA(ctx, ks, "hsm-operational", PurposeOperational, ECDSAP256, pkix.Name{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := issue(t, op, OperationalProfile{DeviceID: "dev-1"})
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         poolOf([]*x509.Certificate{root.Certificate()}),
		Intermediates: poolOf([]*x509.Certificate{op.Certificate()}),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("chain from HSM-backed CAs does not verify: %v", err)
	}

	if _, err := ks.Generate(ctx, "hsm-root", ECDSAP256); !errors.Is(err, ErrKeyExists) {
		t.Errorf("duplicate label: err = %v, want ErrKeyExists", err)
	}
	if _, err := ks.Load(ctx, "absent"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing label: err = %v, want ErrKeyNotFound", err)
	}
	if _, err := ks.Load(ctx, "../bad"); err == nil {
		t.Error("Load accepted an invalid label")
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}

	// The keys persist on the token: a new session finds them again.
	ks2, err := NewPKCS11KeyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(ctx, ks2, "hsm-operational", op.CertificatePEM())
	if err != nil {
		t.Fatal(err)
	}
	leaf2, _ := issue(t, loaded, OperationalProfile{DeviceID: "dev-2"})
	if err := leaf2.CheckSignatureFrom(op.Certificate()); err != nil {
		t.Errorf("certificate issued after reload does not verify: %v", err)
	}
	if _, err := LoadCA(ctx, ks2, "hsm-root", op.CertificatePEM()); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("wrong key for certificate: err = %v, want ErrKeyMismatch", err)
	}
	if err := ks2.Close(); err != nil {
		t.Fatal(err)
	}

	bad := cfg
	bad.PIN = "9999"
	if ks3, err := NewPKCS11KeyStore(bad); err == nil {
		_ = ks3.Close()
		t.Error("wrong PIN accepted")
	}
	bad = cfg
	bad.TokenLabel = "no-such-token"
	if ks3, err := NewPKCS11KeyStore(bad); err == nil {
		_ = ks3.Close()
		t.Error("unknown token accepted")
	}
	if _, err := NewPKCS11KeyStore(PKCS11Config{}); err == nil {
		t.Error("empty configuration accepted")
	}
}
