package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/pki"
)

// TestInitCA runs `muster ca init`'s code path twice: the first run creates
// the hierarchy and ca.pem, the second loads the same CAs; a wrong
// passphrase stops it with a message naming the fix.
func TestInitCA(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	first, err := InitCA(ctx, cfg)
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	var purposes []string
	for _, c := range first {
		purposes = append(purposes, c.Purpose)
	}
	if strings.Join(purposes, " ") != "root operational server" {
		t.Fatalf("CAs = %v", purposes)
	}
	caPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))
	if err != nil || string(caPEM) != first[0].CertPEM {
		t.Fatalf("ca.pem is not the root certificate: %v", err)
	}
	again, err := InitCA(ctx, cfg)
	if err != nil || len(again) != 3 || again[0].ID != first[0].ID {
		t.Fatalf("second InitCA = %v, %v", again, err)
	}
	cfg.CAPassphrase = []byte("not the passphrase")
	if _, err := InitCA(ctx, cfg); !errors.Is(err, pki.ErrKeyUnreadable) || !strings.Contains(err.Error(), pki.PassphraseEnv) {
		t.Fatalf("InitCA with a wrong passphrase = %v", err)
	}
	// Keys without their passphrase file: refuse rather than make a new one.
	if err := os.Remove(filepath.Join(cfg.DataDir, "ca.passphrase")); err != nil {
		t.Fatal(err)
	}
	cfg.CAPassphrase = nil
	if _, err := InitCA(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no passphrase") {
		t.Fatalf("InitCA without the passphrase = %v", err)
	}
}

// TestInitCAOnPKCS11 bootstraps the hierarchy with every key on a SoftHSM2
// token, as `muster serve --pkcs11-module ...` does.
func TestInitCAOnPKCS11(t *testing.T) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(module); err != nil || serr != nil {
		t.Skip("softhsm2 not installed: apt-get install -y softhsm2")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "muster", "--pin", "1234", "--so-pin", "5678").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	cfg := Config{DataDir: filepath.Join(dir, "data"), KeyAlgorithm: "ecdsa-p384", Logger: slog.New(slog.DiscardHandler),
		PKCS11: &PKCS11Config{ModulePath: module, TokenLabel: "muster", PIN: "1234"}}
	cas, err := InitCA(context.Background(), cfg)
	if err != nil || len(cas) != 3 {
		t.Fatalf("InitCA on the token = %v, %v", cas, err)
	}
	if keys, _ := filepath.Glob(filepath.Join(cfg.DataDir, "keys", "*")); len(keys) != 0 {
		t.Errorf("key files written despite PKCS#11: %v", keys)
	}
	if again, err := InitCA(context.Background(), cfg); err != nil || again[2].ID != cas[2].ID {
		t.Fatalf("second InitCA on the token = %v, %v", again, err)
	}
	cfg.PKCS11.PIN = "0000"
	if _, err := InitCA(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "PIN") {
		t.Fatalf("InitCA with a wrong PIN = %v", err)
	}
}
