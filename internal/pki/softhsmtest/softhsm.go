// Package softhsmtest gives tests a fresh SoftHSM2 token, so the PKCS#11
// key store is tested against a real PKCS#11 module. It imports nothing of
// Muster's, so package pki's own tests can use it.
package softhsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is where Debian's softhsm2 package installs the PKCS#11 module.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// PIN is the user PIN of every token Token makes.
const PIN = "1234"

// Token initialises a token with the given label in a temporary directory
// (SOFTHSM2_CONF points there for the rest of the test) and returns the
// module path. Without softhsm2 the test is skipped with a message that CI
// looks for, so CI fails instead of passing silently.
func Token(t testing.TB, label string) (module string) {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Skip("softhsm2 not installed: apt-get install -y softhsm2")
	}
	if _, err := os.Stat(Module); err != nil {
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
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return Module
}
