package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// startAPI runs the real admin API with a real SQLite store on a TLS test
// server and returns a data directory laid out the way "muster serve"
// leaves it, so the CLI discovers the server, the token and the CA.
func startAPI(t *testing.T) (dataDir string) {
	t.Helper()
	dataDir, _ = startAPIStore(t)
	return dataDir
}

// startAPIStore is startAPI that also returns the store, for tests that
// prepare records no API route creates; opts adjust the API's Config.
func startAPIStore(t *testing.T, opts ...func(*api.Config)) (dataDir string, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	secret, hash := api.NewTokenSecret()
	if err := st.CreateToken(ctx, &store.Token{Name: "admin", Role: "admin", Hash: hash}, "test"); err != nil {
		t.Fatal(err)
	}
	ks, err := pki.NewFileKeyStore(t.TempDir(), []byte("test passphrase"), pki.WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ca.Open(ctx, st, ks, ca.Options{})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	cfg := api.Config{Store: st, CAs: cas}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewTLSServer(api.New(cfg).Handler())
	t.Cleanup(srv.Close)
	return dataDirFor(t, srv, secret), st
}

// cli runs muster against dataDir and fails the test on a non-zero exit.
func cli(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"--data-dir", dataDir}, args...)...)
	if code != 0 {
		t.Fatalf("muster %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

func cliJSON[T any](t *testing.T, dataDir string, args ...string) T {
	t.Helper()
	out := cli(t, dataDir, append(args, "-o", "json")...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("muster %s -o json printed invalid JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

func TestCLIAgainstAPI(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	files := t.TempDir()
	bom := filepath.Join(files, "bom.json")
	writeFile(t, bom, `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "components":[{"type":"device","name":"mainboard","version":"r3"},{"type":"firmware","name":"bootloader","version":"2.1.0"}]}`)
	qc := filepath.Join(files, "qc.json")
	writeFile(t, qc, `[{"test":"rf-power","result":"pass","measurements":{"dBm":14.2},"station":"QC-3","at":"2026-11-20T10:00:00Z"}]`)

	if out := cli(t, dir, "whoami"); !strings.Contains(out, "admin") {
		t.Fatalf("whoami: %s", out)
	}

	// A manufacturer token registers a device for its own, registered factory.
	cli(t, dir, "factories", "add", "acme", "--models", "sensor-x", "--serial-pattern", "SN-[0-9]{4}")
	created := cliJSON[client.CreatedToken](t, dir, "tokens", "create", "--role", "manufacturer", "--factory", "acme", "--name", "acme-line-1")
	if !strings.HasPrefix(created.Secret, "mst_") {
		t.Fatalf("tokens create: %+v", created)
	}
	d := cliJSON[client.Device](t, dir, "--token", created.Secret, "devices", "create", "--model", "sensor-x", "--serial", "SN-0001",
		"--batch", "B-2026-47", "--bom", bom, "--qc", qc, "--tag", "pilot", "--attr", "color=grey")
	if d.ID == "" || d.Identity.Factory != "acme" || len(d.Manufacturing.QC) != 1 || d.Attributes["color"] != "grey" {
		t.Fatalf("devices create: %+v", d)
	}
	id := d.ID

	if out := cli(t, dir, "devices", "get", id); !strings.Contains(out, "SN-0001") || !strings.Contains(out, "manufactured") {
		t.Fatalf("devices get: %s", out)
	}
	out := cli(t, dir, "devices", "list", "--model", "sensor-x")
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, id) || !strings.Contains(out, "SN-0001") {
		t.Fatalf("devices list: %s", out)
	}
	page := cliJSON[client.Page[client.Device]](t, dir, "devices", "list", "--all", "--tag", "pilot")
	if len(page.Items) != 1 || page.Items[0].ID != id {
		t.Fatalf("devices list --all -o json: %+v", page)
	}

	// An invalid move is refused, names the allowed states and fails.
	_, stderr, code := runCLI(t, "--data-dir", dir, "devices", "state", id, "active")
	if code != 1 || !strings.Contains(stderr, "(code invalid_transition") ||
		!strings.Contains(stderr, "Allowed states: pending, provisioned, decommissioned") {
		t.Fatalf("invalid transition: exit %d, stderr %q", code, stderr)
	}
	cli(t, dir, "devices", "state", id, "pending", "--reason", "shipped to integrator")
	cli(t, dir, "devices", "state", id, "provisioned")
	d = cliJSON[client.Device](t, dir, "devices", "update", id, "--owner", "city-of-lyon", "--site", "lyon-depot-2", "--group", "streetlights")
	if d.Inventory.Owner != "city-of-lyon" || d.Inventory.Location.Site != "lyon-depot-2" || d.Inventory.Tags[0] != "pilot" {
		t.Fatalf("devices update kept the rest of the inventory? %+v", d.Inventory)
	}
	if out := cli(t, dir, "devices", "state", id, "active"); !strings.Contains(out, "active") {
		t.Fatalf("devices state: %s", out)
	}
	cli(t, dir, "devices", "qc", id, "--test", "burn-in", "--result", "pass", "--measure", "hours=48")
	cli(t, dir, "devices", "test", id, "--test", "mqtt-connect", "--result", "pass")
	cli(t, dir, "devices", "maintenance", id, "--problem", "no telemetry", "--diagnosis", "antenna loose",
		"--action", "reseated antenna", "--outcome", "telemetry restored", "--technician", "tech-7")
	d = cliJSON[client.Device](t, dir, "devices", "decommission", id, "--reason", "end of contract",
		"--wipe-method", "crypto-erase", "--wipe-by", "tech-7", "--wipe-evidence", "wipe-log-0042")
	if d.Lifecycle.State != client.StateDecommissioned {
		t.Fatalf("decommission: state %s", d.Lifecycle.State)
	}
	cli(t, dir, "devices", "dispose", id, "--method", "recycle", "--facility", "WEEE-Lyon-1")

	// An auditor reads the passport and verifies the history.
	auditor := cliJSON[client.CreatedToken](t, dir, "tokens", "create", "--role", "auditor", "--name", "auditor").Secret
	md := cli(t, dir, "--token", auditor, "devices", "passport", id, "--format", "md")
	if !strings.HasPrefix(md, "# Device passport") || !strings.Contains(md, "crypto-erase") || !strings.Contains(md, "WEEE-Lyon-1") {
		t.Fatalf("passport md:\n%s", md)
	}
	p := cliJSON[client.Passport](t, dir, "--token", auditor, "devices", "passport", id)
	if p.DeviceID != id || !p.History.Verified || p.Lifecycle.State != client.StateDisposed {
		t.Fatalf("passport json: %+v", p)
	}
	events := cliJSON[struct{ Items []client.Event }](t, dir, "--token", auditor, "devices", "history", id)
	if n := len(events.Items); n < 10 {
		t.Fatalf("history has %d events", n)
	}
	if out := cli(t, dir, "--token", auditor, "devices", "verify", id); out != "history intact: "+itoa(len(events.Items))+" events\n" {
		t.Fatalf("verify: %q", out)
	}
	if out := cli(t, dir, "devices", "history", id); !strings.Contains(out, "device.decommissioned") {
		t.Fatalf("history table:\n%s", out)
	}
	comps := cliJSON[struct{ Items []client.Component }](t, dir, "devices", "components", id)
	if len(comps.Items) != 2 {
		t.Fatalf("components: %+v", comps)
	}

	// The auditor may not manage tokens; the CLI says so with a hint.
	_, stderr, code = runCLI(t, "--data-dir", dir, "--token", auditor, "tokens", "list")
	if code != 1 || !strings.Contains(stderr, "(code forbidden)") || !strings.Contains(stderr, "muster whoami") {
		t.Fatalf("auditor tokens list: exit %d, stderr %q", code, stderr)
	}

	// Revoking the manufacturer token is audited and takes effect at once.
	cli(t, dir, "tokens", "revoke", created.Token.ID)
	_, stderr, code = runCLI(t, "--data-dir", dir, "--token", created.Secret, "whoami")
	if code != 1 || !strings.Contains(stderr, "(code unauthorized)") {
		t.Fatalf("revoked token: exit %d, stderr %q", code, stderr)
	}
	if out := cli(t, dir, "tokens", "list"); !strings.Contains(out, created.Token.ID) {
		t.Fatalf("tokens list:\n%s", out)
	}
	if out := cli(t, dir, "audit-log", "list"); !strings.Contains(out, "token.revoked") {
		t.Fatalf("audit-log list:\n%s", out)
	}
	if out := cli(t, dir, "audit-log", "verify"); !strings.HasPrefix(out, "audit log intact: ") {
		t.Fatalf("audit-log verify: %q", out)
	}
}

func TestCLICreateFromFile(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	in := filepath.Join(t.TempDir(), "device.json")
	writeFile(t, in, `{"identity":{"serial":"F-1","model":"gw","factory":"acme"},"inventory":{"owner":"file-owner","groups":["g"],"tags":[]},"attributes":{"a":"1"}}`)
	d := cliJSON[client.Device](t, dir, "devices", "create", "-f", in, "--owner", "flag-owner", "--attr", "b=2")
	if d.Identity.Serial != "F-1" || d.Inventory.Owner != "flag-owner" || d.Inventory.Groups[0] != "g" ||
		d.Attributes["a"] != "1" || d.Attributes["b"] != "2" {
		t.Fatalf("create -f with overrides: %+v", d)
	}
	writeFile(t, in, `{"identity":{"serial":"F-2"},"colour":"red"}`)
	_, stderr, code := runCLI(t, "--data-dir", dir, "devices", "create", "-f", in)
	if code != 1 || !strings.Contains(stderr, `unknown field "colour"`) {
		t.Fatalf("unknown field in -f: exit %d, stderr %q", code, stderr)
	}
	// The server's validation names the field.
	_, stderr, code = runCLI(t, "--data-dir", dir, "devices", "create", "--model", "gw", "--factory", "acme")
	if code != 1 || !strings.Contains(stderr, "field identity.serial") {
		t.Fatalf("missing serial: exit %d, stderr %q", code, stderr)
	}
	// A stale --if-version is refused with a hint.
	_, stderr, code = runCLI(t, "--data-dir", dir, "devices", "update", d.ID, "--owner", "x", "--if-version", "99")
	if code != 1 || !strings.Contains(stderr, "(code version_mismatch") || !strings.Contains(stderr, "Hint:") {
		t.Fatalf("stale version: exit %d, stderr %q", code, stderr)
	}
}
