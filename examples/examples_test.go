// Package examples_test builds the example programs and runs them, as a
// user would, against a real Muster node started on loopback ports.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/server"
)

// TestExamples: register-batch registers a batch (and a second run changes
// nothing), provision-fleet provisions every device of it over mTLS and
// publishes telemetry over MQTT, and export-passports writes every
// device's passport with an auditor's token.
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example programs; skipped with -short")
	}
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{
		DataDir: dataDir, APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", PKIAddr: "",
		CAPassphrase: []byte("examples test"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./register-batch", "./provision-fleet", "./export-passports")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the examples: %v\n%s", err, out)
	}

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	caFile := filepath.Join(dataDir, "ca.pem")
	env := append(os.Environ(),
		"MUSTER_SERVER=https://"+srv.APIAddr(), "MUSTER_TOKEN="+read("admin.token"), "MUSTER_CA_FILE="+caFile)
	work := t.TempDir()
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		exe := filepath.Join(bin, name)
		if runtime.GOOS == "windows" {
			exe += ".exe"
		}
		cmd := exec.Command(exe, args...)
		cmd.Env, cmd.Dir = env, work
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", name, args, err, &stdout, &stderr)
		}
		return stdout.String()
	}
	expect := func(out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("output %q does not say %q", out, want)
		}
	}

	out := run(env, "register-batch", "-factory", "acme", "-model", "sensor-x", "-count", "5", "-out", "fleet")
	expect(out, "5 rows, 5 registered, 0 existing, 0 refused")
	out = run(env, "register-batch", "-factory", "acme", "-model", "sensor-x", "-count", "5", "-out", "fleet-again")
	expect(out, "5 rows, 0 registered, 5 existing, 0 refused")

	out = run(env, "provision-fleet", "-factory", "acme", "-dir", "fleet",
		"-device-server", "https://"+read("device.addr"), "-mqtt", read("mqtt.addr"))
	expect(out, "provisioned 5 devices (0 failed, 5 published telemetry)")

	// An auditor exports what the fleet looks like now.
	admin, err := client.New("https://"+srv.APIAddr(), client.WithToken(read("admin.token")), client.WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	auditor, err := admin.CreateToken(context.Background(), client.TokenRequest{Name: "auditor", Role: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	auditorEnv := append(env[:len(env):len(env)], "MUSTER_TOKEN="+auditor.Secret)
	out = run(auditorEnv, "export-passports", "-factory", "acme", "-out", "passports")
	expect(out, "exported 5 passports to passports (0 with a broken history)")
	files, _ := filepath.Glob(filepath.Join(work, "passports", "*.json"))
	if len(files) != 5 {
		t.Fatalf("%d passport files, want 5", len(files))
	}
	var p client.Passport
	data, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("passport %s: %v", files[0], err)
	}
	// Provisioned, or active once the gateway saw the first connection.
	if st := p.Lifecycle.State; p.Identity.Factory != "acme" || (st != "provisioned" && st != "active") {
		t.Fatalf("passport %s: factory %q, state %q; want acme, provisioned or active", files[0], p.Identity.Factory, st)
	}
}
