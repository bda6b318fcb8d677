package ca

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMToken initialises a fresh SoftHSM2 token and returns how to open it.
func softHSMToken(t *testing.T) pki.PKCS11Config {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Skip("softhsm2 not installed: apt-get install -y softhsm2")
	}
	if _, err := os.Stat(softHSMModule); err != nil {
		t.Skip("softhsm2 not installed: apt-get install -y softhsm2")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, dir, "softhsm2.conf", []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"))
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "muster-ca", "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return pki.PKCS11Config{ModulePath: softHSMModule, TokenLabel: "muster-ca", PIN: "1234"}
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
