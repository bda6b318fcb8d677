package api

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// auditAccess and auditContractPermissions transcribe this feature's rows of
// docs/api-contract.md (see rbac_test.go).
var (
	auditAccess = map[string]string{
		"listAuditChecks":     "admin operator auditor",
		"runAudit":            "admin operator auditor",
		"listAuditRuns":       "admin operator auditor",
		"getAuditRun":         "admin operator auditor",
		"listFindings":        "admin operator auditor",
		"getFinding":          "admin operator auditor",
		"suppressFinding":     "admin operator",
		"importAdvisories":    "admin operator",
		"listAdvisories":      "admin operator auditor",
		"listVulnerabilities": "admin operator auditor",
	}
	auditContractPermissions = map[Permission]string{
		PermFindingsRead:     "admin operator auditor",
		PermAuditRun:         "admin operator auditor",
		PermFindingsSuppress: "admin operator",
		PermVulnsManage:      "admin operator",
	}
)

// testAdvisory is a small OSV record written for these tests.
func testAdvisory(id string) map[string]any {
	return map[string]any{
		"id": id, "modified": "2026-11-01T00:00:00Z", "summary": "overflow in acme-fw",
		"affected": []any{map[string]any{
			"package": map[string]any{"ecosystem": "Muster", "name": "acme-fw"},
			"ranges":  []any{map[string]any{"type": "SEMVER", "events": []any{map[string]any{"introduced": "1.0.0"}, map[string]any{"fixed": "1.4.2"}}}},
		}},
	}
}

// auditFinding records a run with one open finding and returns its key.
func (h *harness) auditFinding() (runID, key string) {
	h.t.Helper()
	ctx := h.t.Context()
	run := &store.AuditRun{Kind: store.AuditManual, Actor: "test", Checks: []string{"not-seen"}}
	if err := h.st.StartAuditRun(ctx, run); err != nil {
		h.t.Fatal(err)
	}
	key = fmt.Sprintf("not-seen:dev_test%d", h.serial.Add(1))
	f := store.Finding{Key: key, Check: "not-seen", Severity: audit.SeverityLow, SubjectKind: "device", Subject: key[9:], DeviceID: key[9:],
		Message: "not seen", Fix: "look"}
	// A finish resolves the earlier fixtures' findings of the check; keep
	// them reported so each fixture's finding stays open.
	old, _, _ := h.st.ListFindings(ctx, store.FindingFilter{Check: "not-seen"}, "", 1000)
	if _, err := h.st.FinishAuditRun(ctx, run.ID, []string{"not-seen"}, append(old, f)); err != nil {
		h.t.Fatal(err)
	}
	return run.ID, key
}

// waitAuditRun polls GET /v1/audit/runs/{id} until the run ends, with a
// generous deadline, and returns it as it ended.
func (h *harness) waitAuditRun(id string) store.AuditRun {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		run := call[store.AuditRun](h, request{caller: "auditor", method: "GET", path: "/v1/audit/runs/" + id}, http.StatusOK)
		if run.Status != store.AuditRunning {
			return run
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("audit run %s still running: %+v", id, run)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAuditIdle waits until no audit run is running.
func (h *harness) waitAuditIdle() {
	h.t.Helper()
	runs, err := h.st.AuditRuns(h.t.Context(), maxRuns)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range runs {
		if r.Status == store.AuditRunning {
			h.waitAuditRun(r.ID)
		}
	}
}

// auditFixture prepares the target of one RBAC call of an audit route.
// ok is false for other routes.
func auditFixture(t *testing.T, h *harness, rt route) (path string, body any, ok bool) {
	t.Helper()
	if _, mine := auditAccess[rt.name]; !mine {
		return "", nil, false
	}
	switch rt.name {
	case "runAudit":
		// A node runs one audit at a time: let the previous caller's
		// background run end, or this caller would be refused as busy.
		h.waitAuditIdle()
		return rt.pattern, map[string]any{"checks": []string{"weak-key"}}, true
	case "getAuditRun":
		id, _ := h.auditFinding()
		return strings.Replace(rt.pattern, "{id}", id, 1), nil, true
	case "getFinding":
		_, key := h.auditFinding()
		return strings.Replace(rt.pattern, "{key}", key, 1), nil, true
	case "suppressFinding":
		_, key := h.auditFinding()
		return strings.Replace(rt.pattern, "{key}", key, 1),
			map[string]any{"reason": "accepted", "expiresAt": time.Now().Add(24 * time.Hour).Format(time.RFC3339)}, true
	case "importAdvisories":
		return rt.pattern, map[string]any{"advisories": []any{map[string]any{"source": "a.json", "record": testAdvisory("RBAC-1")}}}, true
	}
	return rt.pattern, nil, true
}

// TestAuditRoutes walks the feature as a user would: import an advisory,
// list the vulnerable devices, run the audit, read, filter and suppress
// findings, and read the run history.
func TestAuditRoutes(t *testing.T) {
	h := newHarness(t)
	vulnerable := h.deviceIn(factory1, fleet.StateActive)
	call[*fleet.Device](h, request{caller: "admin", method: "PATCH", path: "/v1/devices/" + vulnerable.ID,
		body: map[string]any{"provisioning": map[string]any{"firmware": []any{map[string]any{"component": "acme-fw", "version": "1.3.0"}}}}}, http.StatusOK)
	patched := h.deviceIn(factory1, fleet.StateActive)
	call[*fleet.Device](h, request{caller: "admin", method: "PATCH", path: "/v1/devices/" + patched.ID,
		body: map[string]any{"provisioning": map[string]any{"firmware": []any{map[string]any{"component": "acme-fw", "version": "1.4.2"}}}}}, http.StatusOK)

	imp := call[store.AdvisoryImport](h, request{caller: "operator", method: "POST", path: "/v1/advisories",
		body: map[string]any{"advisories": []any{map[string]any{"source": "MUSTER-1.json", "record": testAdvisory("MUSTER-1")}}}}, http.StatusOK)
	if imp.Added != 1 {
		t.Fatalf("import = %+v", imp)
	}
	advs := call[list[store.Advisory]](h, request{caller: "auditor", method: "GET", path: "/v1/advisories"}, http.StatusOK)
	if len(advs.Items) != 1 || advs.Items[0].Packages[0].Name != "acme-fw" || advs.Items[0].Source != "MUSTER-1.json" {
		t.Fatalf("advisories = %+v", advs)
	}
	vulns := call[list[audit.DeviceVulns]](h, request{caller: "auditor", method: "GET", path: "/v1/vulnerabilities"}, http.StatusOK)
	if len(vulns.Items) != 1 || vulns.Items[0].DeviceID != vulnerable.ID || vulns.Items[0].Matches[0].Fixed[0] != "1.4.2" {
		t.Fatalf("vulnerabilities = %+v", vulns)
	}
	one := call[list[audit.DeviceVulns]](h, request{caller: "auditor", method: "GET", path: "/v1/vulnerabilities?device=" + patched.ID}, http.StatusOK)
	if len(one.Items) != 0 {
		t.Errorf("patched device listed: %+v", one)
	}

	checks := call[AuditChecks](h, request{caller: "auditor", method: "GET", path: "/v1/audit/checks"}, http.StatusOK)
	if len(checks.Checks) != len(audit.All()) || checks.Params.NotSeenAfter != "720h0m0s" || checks.Params.MinRSABits != 2048 {
		t.Errorf("checks = %+v", checks)
	}
	started := call[store.AuditRun](h, request{caller: "auditor", method: "POST", path: "/v1/audit/runs", body: map[string]any{}}, http.StatusAccepted)
	run := h.waitAuditRun(started.ID)
	if run.Status != store.AuditDone || run.Actor != "auditor/auditor-token" || run.Counts.Findings == 0 {
		t.Fatalf("run = %+v", run)
	}
	page := call[findingPage](h, request{caller: "auditor", method: "GET", path: "/v1/audit/findings?check=vulnerable-firmware&state=open"}, http.StatusOK)
	if len(page.Items) != 1 || page.Items[0].DeviceID != vulnerable.ID || !strings.Contains(page.Items[0].Message, "MUSTER-1") {
		t.Fatalf("findings = %+v", page)
	}
	key := page.Items[0].Key
	byDevice := call[findingPage](h, request{caller: "operator", method: "GET", path: "/v1/audit/findings?device=" + vulnerable.ID + "&severity=high"}, http.StatusOK)
	if len(byDevice.Items) != 1 || byDevice.Items[0].Key != key {
		t.Errorf("by device = %+v", byDevice)
	}

	// Auditors may not suppress what they audit; operators may.
	sup := map[string]any{"reason": "firmware rollout scheduled for next week", "expiresAt": time.Now().Add(7 * 24 * time.Hour).Format(time.RFC3339)}
	if w := h.do(request{caller: "auditor", method: "POST", path: "/v1/audit/findings/" + key + "/suppress", body: sup}); w.Code != http.StatusForbidden {
		t.Errorf("auditor suppress: %d", w.Code)
	}
	f := call[store.Finding](h, request{caller: "operator", method: "POST", path: "/v1/audit/findings/" + key + "/suppress", body: sup}, http.StatusOK)
	if f.State != store.FindingSuppressed || f.Suppression.By != "operator/operator-token" {
		t.Errorf("suppressed = %+v", f)
	}
	log := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: "/v1/audit-log"}, http.StatusOK).Items
	if last := log[len(log)-1]; last.Type != store.EventFindingSuppressed || !strings.Contains(string(last.Data), "rollout") {
		t.Errorf("audit log = %+v", last)
	}
	// A re-run keeps the one finding, suppressed.
	run2 := h.waitAuditRun(call[store.AuditRun](h, request{caller: "admin", method: "POST", path: "/v1/audit/runs",
		body: map[string]any{"checks": []string{"vulnerable-firmware"}}}, http.StatusAccepted).ID)
	if run2.Counts.Findings != 1 || run2.Counts.New != 0 || run2.Counts.Suppressed != 1 {
		t.Errorf("re-run counts = %+v", run2.Counts)
	}
	if got := call[store.Finding](h, request{caller: "auditor", method: "GET", path: "/v1/audit/findings/" + key}, http.StatusOK); got.State != store.FindingSuppressed {
		t.Errorf("finding after re-run = %+v", got)
	}
	runs := call[list[store.AuditRun]](h, request{caller: "auditor", method: "GET", path: "/v1/audit/runs?limit=5"}, http.StatusOK)
	if len(runs.Items) != 2 || runs.Items[0].ID != run2.ID {
		t.Errorf("runs = %+v", runs)
	}
	if got := call[store.AuditRun](h, request{caller: "auditor", method: "GET", path: "/v1/audit/runs/" + run.ID}, http.StatusOK); got.ID != run.ID {
		t.Errorf("run = %+v", got)
	}
}

// TestAuditBadInput: every refusal says what was wrong and writes nothing.
func TestAuditBadInput(t *testing.T) {
	h := newHarness(t)
	_, key := h.auditFinding()
	advisories := func(recs ...any) map[string]any {
		var out []any
		for i, r := range recs {
			out = append(out, map[string]any{"source": fmt.Sprintf("file-%d.json", i), "record": r})
		}
		return map[string]any{"advisories": out}
	}
	bad := testAdvisory("BAD-1")
	bad["affected"].([]any)[0].(map[string]any)["ranges"] = []any{map[string]any{"type": "SEMVER", "events": []any{map[string]any{"fixed": "1.0.0"}}}}
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		field, contains    string
	}{
		{"unknown check", "POST", "/v1/audit/runs", map[string]any{"checks": []string{"nope"}}, 400, "checks", "weak-key"},
		{"unknown field", "POST", "/v1/audit/runs", map[string]any{"check": "weak-key"}, 400, "check", "unknown field"},
		{"bad severity", "GET", "/v1/audit/findings?severity=urgent", nil, 400, "severity", "critical"},
		{"bad check filter", "GET", "/v1/audit/findings?check=nope", nil, 400, "check", "weak-key"},
		{"bad state", "GET", "/v1/audit/findings?state=closed", nil, 400, "state", "suppressed"},
		{"bad cursor", "GET", "/v1/audit/findings?cursor=xyz", nil, 400, "cursor", ""},
		{"bad runs limit", "GET", "/v1/audit/runs?limit=0", nil, 400, "limit", ""},
		{"unknown run", "GET", "/v1/audit/runs/aud_nope", nil, 404, "", "aud_nope"},
		{"unknown finding", "GET", "/v1/audit/findings/nope:x", nil, 404, "", "nope:x"},
		{"suppress without reason", "POST", "/v1/audit/findings/" + key + "/suppress", map[string]any{"expiresAt": time.Now().Add(time.Hour)}, 400, "reason", "reason"},
		{"suppress without expiry", "POST", "/v1/audit/findings/" + key + "/suppress", map[string]any{"reason": "r"}, 400, "expiresAt", "expiry"},
		{"suppress in the past", "POST", "/v1/audit/findings/" + key + "/suppress", map[string]any{"reason": "r", "expiresAt": time.Now().Add(-time.Hour)}, 400, "expiresAt", "future"},
		{"suppress too long", "POST", "/v1/audit/findings/" + key + "/suppress", map[string]any{"reason": "r", "expiresAt": time.Now().Add(400 * 24 * time.Hour)}, 400, "expiresAt", "366"},
		{"suppress unknown", "POST", "/v1/audit/findings/nope:x/suppress", map[string]any{"reason": "r", "expiresAt": time.Now().Add(time.Hour)}, 404, "", ""},
		{"no advisories", "POST", "/v1/advisories", map[string]any{"advisories": []any{}}, 400, "advisories", ""},
		{"bad advisory names its file", "POST", "/v1/advisories", advisories(testAdvisory("OK-1"), bad), 400, "advisories[1]", "file-1.json"},
		{"duplicate advisory", "POST", "/v1/advisories", advisories(testAdvisory("OK-1"), testAdvisory("OK-1")), 400, "advisories[1]", "file-0.json"},
		{"advisory not an object", "POST", "/v1/advisories", advisories("just text"), 400, "advisories[0]", "OSV"},
		{"unknown device", "GET", "/v1/vulnerabilities?device=dev_nope", nil, 404, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := h.with(t).do(request{caller: "admin", method: c.method, path: c.path, body: c.body})
			e := errorOf(t, w)
			if w.Code != c.status || e.Field != c.field || !strings.Contains(e.Message, c.contains) {
				t.Errorf("%d %+v, want %d field %q containing %q", w.Code, e, c.status, c.field, c.contains)
			}
		})
	}
	if advs, _ := h.st.Advisories(t.Context(), false); len(advs) != 0 {
		t.Errorf("refused imports stored %d advisories", len(advs))
	}
	if f, _ := h.st.Finding(t.Context(), key); f.Suppression != nil {
		t.Errorf("a refused suppression was stored: %+v", f)
	}
}

// TestAdvisoryImportFromTestdata imports the vuln package's advisories the
// way the CLI sends them.
func TestAdvisoryImportFromTestdata(t *testing.T) {
	h := newHarness(t)
	var files []any
	for _, n := range []string{"MUSTER-2026-0001.json", "MUSTER-2026-0002.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "vuln", "testdata", "osv", n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, map[string]any{"source": n, "record": rawJSON(raw)})
	}
	imp := call[store.AdvisoryImport](h, request{caller: "admin", method: "POST", path: "/v1/advisories", body: map[string]any{"advisories": files, "replace": true}}, http.StatusOK)
	if imp.Added != 2 {
		t.Fatalf("import = %+v", imp)
	}
	advs, _ := h.st.Advisories(t.Context(), false)
	if len(advs) != 2 || advs[1].Packages[0].Ecosystem != "Go" {
		t.Errorf("advisories = %+v", advs)
	}
}

// rawJSON embeds bytes as JSON as they are.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
