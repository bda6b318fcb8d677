package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeviceMQTTBadInput: muster device mqtt says what is missing before it
// connects anywhere: no server runs here.
func TestDeviceMQTTBadInput(t *testing.T) {
	isolateEnv(t)
	data := t.TempDir()
	if _, stderr, code := runCLI(t, "device", "mqtt", "--data-dir", data); code != 1 || !strings.Contains(stderr, `required flag(s) "dir" not set`) {
		t.Errorf("no --dir: code %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, "device", "mqtt", "--data-dir", data, "--dir", t.TempDir()); code != 1 || !strings.Contains(stderr, "no mqtt.addr in") {
		t.Errorf("no gateway address: code %d, stderr %q", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(data, "mqtt.addr"), []byte("127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "device", "mqtt", "--data-dir", data, "--dir", t.TempDir()); code != 1 || !strings.Contains(stderr, "read --ca") {
		t.Errorf("no CA file: code %d, stderr %q", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(data, "ca.pem"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "device", "mqtt", "--data-dir", data, "--dir", t.TempDir()); code != 1 || !strings.Contains(stderr, "holds no PEM certificate") {
		t.Errorf("bad CA file: code %d, stderr %q", code, stderr)
	}
}
