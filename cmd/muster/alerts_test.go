package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/store"
)

// TestReadmeDetection runs the README's detection walkthrough: a node tuned
// for a short demo, a simulated fleet with every attack scenario, an alert
// for each, the automatic quarantine recorded with its alert, and an
// incident exported.
func TestReadmeDetection(t *testing.T) {
	out := runReadmeBlock(t, "detect")
	t.Log(out)
	for _, want := range []string{
		"intel-match", "port-scan", "certificate-clone", "auth-failures", "firmware-downgrade", "exfiltration",
		"quarantine applied by detector (automatic)",
		"# Incident inc_", "pentest traffic, confirmed with the red team", "reverted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("README detection output lacks %q:\n%s", want, out)
		}
	}
}

// TestAlertsCLI drives the alert, rule, intel and incident commands against
// an API server, refusals included.
func TestAlertsCLI(t *testing.T) {
	isolateEnv(t)
	dir, st := startAPIStore(t)
	a, _, err := st.RaiseAlert(t.Context(), store.Alert{DedupKey: "k1", RuleID: "port-scan", DeviceID: "dev-1", Severity: "high", Summary: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	list := cliJSON[client.Page[client.Alert]](t, dir, "alerts", "list", "--state", "open")
	if len(list.Items) != 1 || list.Items[0].ID != a.ID {
		t.Fatalf("alerts list = %+v", list)
	}
	if out := cli(t, dir, "alerts", "ack", a.ID); !strings.Contains(out, "acknowledged") {
		t.Fatalf("ack printed %q", out)
	}
	if _, stderr, code := runCLI(t, "--data-dir", dir, "alerts", "mitigate", a.ID, "reboot"); code != 1 || !strings.Contains(stderr, "reboot") {
		t.Fatalf("mitigate with an unknown action: code %d, %q", code, stderr)
	}

	if _, stderr, code := runCLI(t, "--data-dir", dir, "rules", "set", "r1", "--kind", "magic", "--severity", "high"); code != 1 || !strings.Contains(stderr, "kind") {
		t.Fatalf("rules set with a bad kind: code %d, %q", code, stderr)
	}
	r := cliJSON[client.Rule](t, dir, "rules", "set", "brute", "--kind", "static", "--metric", "authorizationFailures", "--value", "50",
		"--duration", "15m", "--severity", "medium", "--action", "rotate")
	if r.ID != "brute" || r.Duration != "15m0s" || r.Consecutive != 1 {
		t.Fatalf("rule = %+v", r)
	}
	if out := cli(t, dir, "rules", "list"); !strings.Contains(out, "authorizationFailures > 50") {
		t.Fatalf("rules list = %s", out)
	}

	feed := filepath.Join(t.TempDir(), "c2.txt")
	writeFile(t, feed, "# C2\n203.0.113.66\n198.51.100.0/24\n")
	imp := cliJSON[client.IntelImport](t, dir, "intel", "import", feed, "--feed", "c2")
	if imp.Feed.Indicators != 2 || imp.Feed.Format != "list" {
		t.Fatalf("import = %+v", imp)
	}
	writeFile(t, feed, "203.0.113.66\nnot an address\n")
	if _, stderr, code := runCLI(t, "--data-dir", dir, "intel", "import", feed, "--feed", "c2"); code != 1 || !strings.Contains(stderr, "line 2") {
		t.Fatalf("bad feed: code %d, %q", code, stderr)
	}
	if out := cli(t, dir, "intel", "list", "c2"); !strings.Contains(out, "198.51.100.0/24") {
		t.Fatalf("a refused import changed the feed: %s", out)
	}

	in := cliJSON[client.Incident](t, dir, "incidents", "create", "scan on dev-1", "--alert", a.ID)
	cli(t, dir, "incidents", "update", in.ID, "--note", "looked at it", "--close")
	if out := cli(t, dir, "incidents", "export", in.ID); !strings.Contains(out, "looked at it") || !strings.Contains(out, a.ID) {
		t.Fatalf("export = %s", out)
	}
	// Baselines of a device this API (without a detector) never observed.
	dev := cliJSON[client.Device](t, dir, "devices", "create", "--factory", "f", "--model", "m1", "--serial", "S-1")
	if b := cliJSON[client.Baselines](t, dir, "alerts", "baselines", dev.ID); b.Observed || !b.Learning || b.Model != "m1" {
		t.Fatalf("baselines = %+v", b)
	}
	// The stream ends on its own with --for.
	cli(t, dir, "alerts", "watch", "--for", "200ms")
}
