package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// detectAccess and detectContractPermissions transcribe this feature's rows of
// docs/api-contract.md (see rbac_test.go).
var (
	detectAccess = map[string]string{
		"listAlerts":        "admin operator auditor",
		"streamAlerts":      "admin operator auditor",
		"getAlert":          "admin operator auditor",
		"acknowledgeAlert":  "admin operator",
		"resolveAlert":      "admin operator",
		"mitigateAlert":     "admin operator",
		"revertAlertAction": "admin operator",
		"listDetectRules":   "admin operator auditor",
		"putDetectRule":     "admin operator",
		"deleteDetectRule":  "admin operator",
		"deviceBaselines":   "admin operator auditor",
		"listIntelFeeds":    "admin operator auditor",
		"importIntelFeed":   "admin operator",
		"getIntelFeed":      "admin operator auditor",
		"deleteIntelFeed":   "admin operator",
		"createIncident":    "admin operator",
		"listIncidents":     "admin operator auditor",
		"getIncident":       "admin operator auditor",
		"updateIncident":    "admin operator",
		"createWebhook":     "admin",
		"listWebhooks":      "admin",
		"deleteWebhook":     "admin",
		"webhookDeliveries": "admin",
	}
	detectContractPermissions = map[Permission]string{
		PermAlertsRead:     "admin operator auditor",
		PermAlertsManage:   "admin operator",
		PermDetectManage:   "admin operator",
		PermWebhooksManage: "admin",
	}
)

// raise records an alert on a device, as the detector would.
func (h *harness) raise(deviceID, rule string) *store.Alert {
	h.t.Helper()
	a, _, err := h.st.RaiseAlert(context.Background(), store.Alert{DedupKey: fmt.Sprintf("%s/%s/%d", rule, deviceID, h.serial.Add(1)),
		RuleID: rule, DeviceID: deviceID, Severity: "high", Summary: "test", Actions: []string{"quarantine"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// detectFixture prepares a call of a detection route for TestRBAC.
func detectFixture(t *testing.T, h *harness, rt route) (path string, body any, ok bool) {
	t.Helper()
	if _, mine := detectAccess[rt.name]; !mine {
		return "", nil, false
	}
	ctx := context.Background()
	n := h.serial.Add(1)
	id := func(v string) string { return strings.NewReplacer("{id}", v, "{name}", v).Replace(rt.pattern) }
	switch rt.name {
	case "streamAlerts":
		return rt.pattern + "?for=10ms", nil, true
	case "getAlert":
		return id(h.raise(h.newDevice(factory1).ID, "r").ID), nil, true
	case "acknowledgeAlert":
		return id(h.raise(h.newDevice(factory1).ID, "r").ID), map[string]any{}, true
	case "resolveAlert":
		return id(h.raise(h.newDevice(factory1).ID, "r").ID), map[string]any{"resolution": "fixed"}, true
	case "mitigateAlert":
		return id(h.raise(h.newDevice(factory1).ID, "r").ID), map[string]any{"action": "group:watch"}, true
	case "revertAlertAction":
		a := h.raise(h.newDevice(factory1).ID, "r")
		act, err := h.st.RecordAlertAction(ctx, store.AlertAction{AlertID: a.ID, DeviceID: a.DeviceID, Action: "group:watch", Status: store.ActionApplied, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return id(act.ID), map[string]any{"reason": "checked"}, true
	case "putDetectRule":
		rid := fmt.Sprintf("rule-%d", n)
		return id(rid), map[string]any{"kind": "static", "metric": "authorizationFailures", "value": 5, "severity": "medium"}, true
	case "deleteDetectRule":
		rid := fmt.Sprintf("rule-%d", n)
		if err := h.st.SaveDetectRules(ctx, []store.DetectRule{{ID: rid, Doc: json.RawMessage(`{"id":"` + rid + `","kind":"intel","severity":"high"}`)}}, "test"); err != nil {
			t.Fatal(err)
		}
		return id(rid), nil, true
	case "deviceBaselines":
		return id(h.newDevice(factory1).ID), nil, true
	case "importIntelFeed":
		return id(fmt.Sprintf("feed-%d", n)), map[string]any{"content": "203.0.113.7\n"}, true
	case "getIntelFeed", "deleteIntelFeed":
		name := fmt.Sprintf("feed-%d", n)
		if _, err := h.st.ReplaceIntelFeed(ctx, store.IntelFeed{Name: name, Format: "list"}, []store.IntelIndicator{{Type: "ip", Value: "203.0.113.7"}}, "test"); err != nil {
			t.Fatal(err)
		}
		return id(name), nil, true
	case "createIncident":
		return rt.pattern, map[string]any{"title": "investigate", "alertIds": []string{h.raise(h.newDevice(factory1).ID, "r").ID}}, true
	case "getIncident", "updateIncident":
		in, err := h.st.CreateIncident(ctx, "inv", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		return id(in.ID), map[string]any{"note": "looked"}, true
	case "createWebhook":
		return rt.pattern, map[string]any{"url": "https://hooks.example/muster", "secret": "0123456789abcdef"}, true
	case "deleteWebhook", "webhookDeliveries":
		w := &store.Webhook{URL: "https://hooks.example/x", Secret: "0123456789abcdef", MinSeverity: "low"}
		if err := h.st.CreateWebhook(ctx, w, "test"); err != nil {
			t.Fatal(err)
		}
		return id(w.ID), nil, true
	}
	return rt.pattern, nil, true
}

// TestAlertRoutes walks an alert's life through the API: list, read,
// mitigate (quarantine, recorded in the device's history with the alert
// id), revert (un-quarantine), acknowledge, resolve, and the refusals on
// the way.
func TestAlertRoutes(t *testing.T) {
	h := newHarness(t)
	d := h.deviceIn(factory1, fleet.StateActive)
	a := h.raise(d.ID, "port-scan")

	list := call[AlertList](h, request{caller: "auditor", method: "GET", path: "/v1/alerts?state=open&device=" + d.ID}, http.StatusOK)
	if len(list.Items) != 1 || list.Items[0].ID != a.ID {
		t.Fatalf("list = %+v", list)
	}
	act := call[store.AlertAction](h, request{caller: "operator", method: "POST", path: "/v1/alerts/" + a.ID + "/actions", body: map[string]any{"action": "quarantine"}}, http.StatusCreated)
	if act.Status != store.ActionApplied || act.Actor != "operator/operator-token" {
		t.Fatalf("action = %+v", act)
	}
	got := call[fleet.Device](h, request{caller: "admin", method: "GET", path: "/v1/devices/" + d.ID}, http.StatusOK)
	if got.Lifecycle.State != fleet.StateQuarantined {
		t.Fatalf("device is %s after quarantine", got.Lifecycle.State)
	}
	evs, _ := h.st.History(context.Background(), d.ID)
	last := evs[len(evs)-1]
	if last.Type != fleet.EventStateChanged || !strings.Contains(string(last.Data), a.ID) {
		t.Fatalf("last history event = %s %s, want the state change naming alert %s", last.Type, last.Data, a.ID)
	}
	// Revert: the device is active again, and the action says reverted.
	rev := call[store.AlertAction](h, request{caller: "operator", method: "POST", path: "/v1/alert-actions/" + act.ID + "/revert", body: map[string]any{"reason": "false positive"}}, http.StatusOK)
	if rev.Status != store.ActionReverted {
		t.Fatalf("revert = %+v", rev)
	}
	if got := call[fleet.Device](h, request{caller: "admin", method: "GET", path: "/v1/devices/" + d.ID}, http.StatusOK); got.Lifecycle.State != fleet.StateActive {
		t.Fatalf("device is %s after revert", got.Lifecycle.State)
	}
	if e := errorOf(t, h.do(request{caller: "operator", method: "POST", path: "/v1/alert-actions/" + act.ID + "/revert", body: map[string]any{}})); e.Code != codeInvalidTransition {
		t.Fatalf("second revert = %+v", e)
	}
	// A rotate on a device without a connected gateway session still
	// sends the retained command; a revocation is not reversible.
	rot := call[store.AlertAction](h, request{caller: "admin", method: "POST", path: "/v1/alerts/" + a.ID + "/actions", body: map[string]any{"action": "rotate"}}, http.StatusCreated)
	if e := errorOf(t, h.do(request{caller: "admin", method: "POST", path: "/v1/alert-actions/" + rot.ID + "/revert", body: map[string]any{}})); e.Code != codeInvalidTransition || e.Field != "action" {
		t.Fatalf("reverting a rotate = %+v", e)
	}
	// Bad input: unknown action, unknown alert.
	before := h.snapshot(d.ID)
	if e := errorOf(t, h.do(request{caller: "admin", method: "POST", path: "/v1/alerts/" + a.ID + "/actions", body: map[string]any{"action": "reboot"}})); e.Code != codeValidationFailed || e.Field != "action" {
		t.Fatalf("unknown action = %+v", e)
	}
	h.assertUnchanged(t, before, d.ID)
	if w := h.do(request{caller: "admin", method: "POST", path: "/v1/alerts/alr_nope/acknowledge", body: map[string]any{}}); w.Code != http.StatusNotFound {
		t.Fatalf("ack unknown = %d %s", w.Code, w.Body)
	}

	call[store.Alert](h, request{caller: "operator", method: "POST", path: "/v1/alerts/" + a.ID + "/acknowledge", body: map[string]any{}}, http.StatusOK)
	res := call[store.Alert](h, request{caller: "operator", method: "POST", path: "/v1/alerts/" + a.ID + "/resolve", body: map[string]any{"resolution": "scanner was a pentest"}}, http.StatusOK)
	if res.State != store.AlertResolved || res.Resolution != "scanner was a pentest" {
		t.Fatalf("resolved = %+v", res)
	}
	if e := errorOf(t, h.do(request{caller: "operator", method: "POST", path: "/v1/alerts/" + a.ID + "/resolve", body: map[string]any{}})); e.Code != codeInvalidTransition {
		t.Fatalf("resolving twice = %+v", e)
	}
	detail := call[AlertDetail](h, request{caller: "auditor", method: "GET", path: "/v1/alerts/" + a.ID}, http.StatusOK)
	if len(detail.ActionsTaken) != 2 || detail.AckedBy != "operator/operator-token" {
		t.Fatalf("detail = %+v", detail)
	}
}

// TestRulesIntelIncidentsWebhooks covers the configuration routes and
// their refusals of bad input.
func TestRulesIntelIncidentsWebhooks(t *testing.T) {
	h := newHarness(t)
	rule := call[detect.Rule](h, request{caller: "operator", method: "PUT", path: "/v1/detect/rules/bytes-out",
		body: map[string]any{"kind": "device", "metric": "report.bytesOut", "percentile": 99.9, "factor": 3, "severity": "high", "actions": []string{"quarantine"}, "auto": true}}, http.StatusOK)
	if rule.ID != "bytes-out" || rule.Op != ">" || rule.Consecutive != 1 {
		t.Fatalf("rule = %+v", rule)
	}
	for name, body := range map[string]map[string]any{
		"bad percentile": {"kind": "device", "metric": "report.bytesOut", "percentile": 98, "severity": "high"},
		"bad metric":     {"kind": "static", "metric": "nope", "severity": "high"},
		"id mismatch":    {"id": "other", "kind": "intel", "severity": "high"},
	} {
		if e := errorOf(t, h.do(request{caller: "operator", method: "PUT", path: "/v1/detect/rules/r1", body: body})); e.Code != codeValidationFailed {
			t.Errorf("%s: %+v", name, e)
		}
	}
	rules := call[RuleList](h, request{caller: "auditor", method: "GET", path: "/v1/detect/rules"}, http.StatusOK)
	if len(rules.Items) != 1 {
		t.Fatalf("rules = %+v (a refused rule was stored?)", rules)
	}

	stix := `{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","spec_version":"2.1","id":"indicator--a","name":"c2","pattern_type":"stix",
		"pattern":"[ipv4-addr:value = '203.0.113.66'] OR [domain-name:value = 'evil.example']","valid_from":"2026-01-01T00:00:00Z"},
		{"type":"indicator","spec_version":"2.1","id":"indicator--b","pattern_type":"stix","pattern":"[file:hashes.'SHA-256' = 'aa']","valid_from":"2026-01-01T00:00:00Z"}]}`
	imp := call[IntelImport](h, request{caller: "operator", method: "PUT", path: "/v1/intel/feeds/acme-c2", body: map[string]any{"content": stix}}, http.StatusOK)
	if imp.Feed.Indicators != 2 || imp.Feed.Format != "stix" || len(imp.Skipped) != 1 {
		t.Fatalf("import = %+v", imp)
	}
	if e := errorOf(t, h.do(request{caller: "operator", method: "PUT", path: "/v1/intel/feeds/acme-c2", body: map[string]any{"content": "not-an-address!\n"}})); e.Code != codeValidationFailed || e.Field != "content" {
		t.Fatalf("bad feed = %+v", e)
	}
	feed := call[IntelFeedDetail](h, request{caller: "auditor", method: "GET", path: "/v1/intel/feeds/acme-c2"}, http.StatusOK)
	if len(feed.Items) != 2 || feed.Version != 1 {
		t.Fatalf("feed after a refused import = %+v", feed)
	}

	d := h.newDevice(factory1)
	a := h.raise(d.ID, "intel-match")
	in := call[store.Incident](h, request{caller: "operator", method: "POST", path: "/v1/incidents", body: map[string]any{"title": "C2 on " + d.ID, "alertIds": []string{a.ID}}}, http.StatusCreated)
	call[store.Incident](h, request{caller: "operator", method: "PATCH", path: "/v1/incidents/" + in.ID, body: map[string]any{"note": "blocked at the firewall", "state": "closed"}}, http.StatusOK)
	w := h.do(request{caller: "auditor", method: "GET", path: "/v1/incidents/" + in.ID + "?format=md"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "blocked at the firewall") || !strings.Contains(w.Body.String(), a.ID) {
		t.Fatalf("markdown export: %d %s", w.Code, w.Body)
	}
	if e := errorOf(t, h.do(request{caller: "operator", method: "POST", path: "/v1/incidents", body: map[string]any{"title": "x", "alertIds": []string{"alr_missing"}}})); e.Field != "alertIds" {
		t.Fatalf("incident with an unknown alert = %+v", e)
	}

	for name, body := range map[string]map[string]any{
		"http elsewhere": {"url": "http://hooks.example/x", "secret": "0123456789abcdef"},
		"short secret":   {"url": "https://hooks.example/x", "secret": "short"},
		"bad severity":   {"url": "https://hooks.example/x", "secret": "0123456789abcdef", "minSeverity": "urgent"},
	} {
		if e := errorOf(t, h.do(request{caller: "admin", method: "POST", path: "/v1/webhooks", body: body})); e.Code != codeValidationFailed {
			t.Errorf("%s: %+v", name, e)
		}
	}
	hook := call[map[string]any](h, request{caller: "admin", method: "POST", path: "/v1/webhooks", body: map[string]any{"url": "https://hooks.example/x", "secret": "0123456789abcdef"}}, http.StatusCreated)
	if _, shown := hook["secret"]; shown || hook["minSeverity"] != "high" {
		t.Fatalf("webhook answer = %v", hook)
	}
}

// TestAlertStream reads the server-sent-event stream while an alert is
// acknowledged.
func TestAlertStream(t *testing.T) {
	h := newHarness(t)
	a := h.raise(h.newDevice(factory1).ID, "r")
	srv := httptest.NewServer(h.srv.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/alerts/stream?for=5s", nil)
	req.Header.Set("Authorization", "Bearer "+h.tokens["auditor"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, ": muster") {
		t.Fatalf("first line %q", line)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		h.do(request{caller: "operator", method: "POST", path: "/v1/alerts/" + a.ID + "/acknowledge", body: map[string]any{}})
	}()
	var event, data string
	for event == "" || data == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	var ev store.AlertEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil || event != store.EventAlertAcknowledged || ev.Alert.ID != a.ID {
		t.Fatalf("event %q data %s (%v)", event, data, err)
	}
}
