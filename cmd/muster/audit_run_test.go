package main

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/store"
)

// TestReadmeAudit runs the README's audit block against a fresh server:
// an advisory imported, the vulnerable device listed, the audit run, its
// finding read and suppressed, and the run history.
func TestReadmeAudit(t *testing.T) {
	out := runReadmeBlock(t, "audit")
	for _, want := range []string{
		"ADDED       1",
		"MUSTER-2026-0042",
		"meter-fw   2.3.1    firmware  MUSTER-2026-0042  2.4.0",
		"FINDINGS  1 reported, 1 new, 0 resolved",
		"vulnerable-firmware:dev_",
		"runs 1 vulnerable component: meter-fw 2.3.1 (MUSTER-2026-0042) fixed in 2.4.0",
		"STATE       suppressed",
		"REASON      field update to 2.4.0 scheduled for 2026-12-01",
		"OPEN      0 (none), 1 suppressed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit block output lacks %q:\n%s", want, out)
		}
	}
	// Only the device on 2.3.1 is listed as vulnerable.
	if n := strings.Count(out, "meter-fw   2.4.0"); n != 0 {
		t.Errorf("the patched device is listed as vulnerable:\n%s", out)
	}
	// Two runs in the history, newest first.
	if runs := regexp.MustCompile(`(?m)^aud_\S+\s+manual\s+done`).FindAllString(out, -1); len(runs) != 2 {
		t.Errorf("audit runs lists %d runs, want 2:\n%s", len(runs), out)
	}
}

func TestExpiryTime(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"14d": now.Add(14 * 24 * time.Hour), "36h": now.Add(36 * time.Hour),
		"2027-01-31T00:00:00Z": time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC),
	} {
		got, err := expiryTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("expiryTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "-3d", "0d", "2027-01-31"} {
		if _, err := expiryTime(bad, now); err == nil {
			t.Errorf("expiryTime(%q) accepted", bad)
		}
	}
}

func TestAuditFlags(t *testing.T) {
	f := auditFlags{interval: "1d", notSeen: "7d", certExpiry: "30d", caExpiry: "90d", maxCertAge: "720h"}
	cfg, err := f.config()
	if err != nil || cfg.Interval != 24*time.Hour || cfg.Params.NotSeenAfter != 7*24*time.Hour || cfg.Params.MaxCertAge != 720*time.Hour {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	for _, bad := range []auditFlags{{interval: "30s"}, {interval: "often"}, {notSeen: "-1d"}, {caExpiry: "0h"}} {
		if _, err := bad.config(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestVulnsAndAuditCLI imports advisories from a zip archive, refuses a
// bad archive naming the file without changing anything, and checks the
// audit commands' refusals.
func TestVulnsAndAuditCLI(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	files := t.TempDir()
	mkzip := func(name string, entries map[string]string) string {
		t.Helper()
		p := filepath.Join(files, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		for n, body := range entries {
			w, _ := zw.Create(n)
			w.Write([]byte(body))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	read := func(n string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "vuln", "testdata", "osv", n))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := mkzip("good.zip", map[string]string{"osv/MUSTER-2026-0001.json": read("MUSTER-2026-0001.json"), "osv/MUSTER-2026-0002.json": read("MUSTER-2026-0002.json")})
	if out := cli(t, dir, "vulns", "import", good); !strings.Contains(out, "ADDED       2") {
		t.Fatalf("import:\n%s", out)
	}
	id := cliJSON[struct {
		ID string `json:"id"`
	}](t, dir, "devices", "create", "--factory", "lab", "--model", "m1", "--serial", "V-1").ID
	cli(t, dir, "devices", "update", id, "--firmware", "acme-fw=1.3.0")
	if out := cli(t, dir, "vulns", "devices", "--device", id); !strings.Contains(out, "MUSTER-2026-0001") || !strings.Contains(out, "1.4.2") {
		t.Errorf("vulns devices:\n%s", out)
	}

	bad := mkzip("bad.zip", map[string]string{"osv/MUSTER-2026-0001.json": read("MUSTER-2026-0001.json"), "osv/broken.json": `{"id": "B-1"}`})
	_, stderr, code := runCLI(t, "--data-dir", dir, "vulns", "import", bad, "--replace")
	if code == 0 || !strings.Contains(stderr, "bad.zip:osv/broken.json") || !strings.Contains(stderr, "modified") {
		t.Errorf("bad archive: exit %d, stderr %q", code, stderr)
	}
	if out := cli(t, dir, "vulns", "list"); strings.Count(out, "MUSTER-2026-000") != 2 {
		t.Errorf("a refused import changed the advisories:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "run", "--checks", "nope"}, "weak-key"},
		{[]string{"audit", "suppress", "x:y", "--reason", "r", "--expires", "soon"}, "--expires"},
		{[]string{"audit", "suppress", "x:y", "--expires", "3d"}, "reason"},
		{[]string{"audit", "findings", "--state", "closed"}, "suppressed"},
		{[]string{"vulns", "import", filepath.Join(files, "missing")}, "missing"},
	} {
		if _, stderr, code := runCLI(t, append([]string{"--data-dir", dir}, c.args...)...); code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("muster %s: exit %d, stderr %q (want it to mention %q)", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	run := cliJSON[struct {
		Counts struct {
			Findings int `json:"findings"`
		} `json:"counts"`
	}](t, dir, "audit", "run", "--checks", "vulnerable-firmware")
	if run.Counts.Findings != 1 {
		t.Errorf("run = %+v", run)
	}
}

// heldAuditStore holds audit runs at their device scan until release is
// closed, so a test can see a run in progress.
type heldAuditStore struct {
	audit.Store
	release chan struct{}
	fail    error // fails the device scan instead
}

func (s *heldAuditStore) EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error {
	if err := s.Store.EachAuditDevice(ctx, fn); err != nil {
		return err
	}
	if s.fail != nil {
		return s.fail
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestAuditRunWaits: `audit run --no-wait` prints the run's id while the
// run is still in progress; `audit run` waits for the run and prints it
// done, with the summary rows the README relies on; a failed run exits
// non-zero with its reason.
func TestAuditRunWaits(t *testing.T) {
	isolateEnv(t)
	held := &heldAuditStore{release: make(chan struct{})}
	var runner *audit.Runner
	dir, st := startAPIStore(t, func(cfg *api.Config) {
		held.Store = cfg.Store.(*store.Store)
		r, err := audit.New(audit.Config{Store: held, Node: "cli-test"})
		if err != nil {
			t.Fatal(err)
		}
		runner = r
		cfg.Auditor = r
	})
	t.Cleanup(func() { runner.Stop(context.Background()) })

	out := cli(t, dir, "audit", "run", "--no-wait", "--checks", "not-seen") // not-seen reads the devices: held
	m := regexp.MustCompile(`(?m)^RUN\s+(aud_\S+)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--no-wait printed:\n%s", out)
	}
	if run, err := st.AuditRun(t.Context(), m[1]); err != nil || run.Status != store.AuditRunning {
		t.Fatalf("run %s after --no-wait returned: %+v, %v", m[1], run, err)
	}
	// While it runs, another start is refused naming it.
	if _, stderr, code := runCLI(t, "--data-dir", dir, "audit", "run", "--no-wait"); code == 0 || !strings.Contains(stderr, m[1]) {
		t.Errorf("second run: exit %d, stderr %q", code, stderr)
	}
	close(held.release)

	// Once that run ended (seen in the store), the default waits for a
	// new run and prints its summary.
	deadline := time.Now().Add(20 * time.Second)
	for {
		run, err := st.AuditRun(t.Context(), m[1])
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != store.AuditRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the --no-wait run never ended: %+v", run)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stdout, stderr, code := runCLI(t, "--data-dir", dir, "audit", "run", "--checks", "weak-key,not-seen")
	if code != 0 {
		t.Fatalf("audit run: exit %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"STATUS    done", "CHECKS    weak-key,not-seen", "FINDINGS  0 reported, 0 new, 0 resolved",
		"OPEN      0 (none), 0 suppressed", "EXAMINED  2/2 checks"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("audit run output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "checks") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
}

// TestAuditRunFailed: a run that fails is printed with its reason, and
// the command exits non-zero.
func TestAuditRunFailed(t *testing.T) {
	isolateEnv(t)
	var runner *audit.Runner
	dir, _ := startAPIStore(t, func(cfg *api.Config) {
		r, err := audit.New(audit.Config{Store: &heldAuditStore{Store: cfg.Store.(*store.Store), fail: errors.New("disk on fire")}})
		if err != nil {
			t.Fatal(err)
		}
		runner = r
		cfg.Auditor = r
	})
	t.Cleanup(func() { runner.Stop(context.Background()) })
	stdout, stderr, code := runCLI(t, "--data-dir", dir, "audit", "run", "--checks", "not-seen")
	if code == 0 || !strings.Contains(stdout, "STATUS    failed") || !strings.Contains(stdout, "disk on fire") || !strings.Contains(stderr, "disk on fire") {
		t.Errorf("failed run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
