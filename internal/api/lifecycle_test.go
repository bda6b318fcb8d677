package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestLifecycleWalk takes one device from the factory line to disposal
// through the API and checks the record, the history and the passport.
func TestLifecycleWalk(t *testing.T) {
	h := newHarness(t)
	post := func(caller, path string, body any, status int) *fleet.Device {
		t.Helper()
		return call[*fleet.Device](h, request{caller: caller, method: "POST", path: path, body: body}, status)
	}

	// The manufacturer registers the unit with its BOM and line QC; the
	// factory defaults to the token's.
	d := post("manufacturer", "/v1/devices", map[string]any{
		"identity": map[string]any{"serial": "SN-WALK-1", "model": "gw-100", "batch": "b1"},
		"manufacturing": map[string]any{
			"bom":      json.RawMessage(testBOM),
			"qc":       []any{map[string]any{"test": "solder-aoi", "result": "pass", "at": "2025-03-01T10:00:00Z"}},
			"assembly": []any{map[string]any{"step": "reflow", "station": "L1", "at": "2025-03-01T09:00:00Z"}},
		},
	}, http.StatusCreated)
	if d.Identity.Factory != factory1 || d.Lifecycle.State != fleet.StateManufactured || d.Version != 1 {
		t.Fatalf("created device = factory %q state %s version %d", d.Identity.Factory, d.Lifecycle.State, d.Version)
	}
	base := "/v1/devices/" + d.ID
	comps := call[list[fleet.Component]](h, request{caller: "auditor", method: "GET", path: base + "/components"}, http.StatusOK)
	if len(comps.Items) != 3 || comps.Items[1].Name != "bootloader" {
		t.Errorf("components = %+v", comps.Items)
	}
	d = post("manufacturer", base+"/qc", map[string]any{"test": "burn-in", "result": "pass", "measurements": map[string]any{"temp": 41.5}}, http.StatusCreated)
	if len(d.Manufacturing.QC) != 2 || d.Manufacturing.QC[1].At.IsZero() {
		t.Errorf("QC after append = %+v (the API stamps an omitted time)", d.Manufacturing.QC)
	}

	for _, st := range []fleet.State{fleet.StatePending, fleet.StateProvisioned, fleet.StateActive,
		fleet.StateSuspended, fleet.StateActive} {
		d = post("operator", base+"/state", map[string]any{"state": st, "reason": "walk"}, http.StatusOK)
		if d.Lifecycle.State != st {
			t.Fatalf("state = %s, want %s", d.Lifecycle.State, st)
		}
		if st == fleet.StateProvisioned {
			d = post("installer", base+"/tests", map[string]any{"test": "lte-attach", "result": "pass"}, http.StatusCreated)
			if len(d.Provisioning.Tests) != 1 {
				t.Errorf("tests = %+v", d.Provisioning.Tests)
			}
		}
	}
	d = post("installer", base+"/maintenance", map[string]any{"problem": "fan noise", "diagnosis": "worn bearing", "action": "replaced fan", "outcome": "quiet"}, http.StatusCreated)
	if len(d.Maintenance) != 1 || d.Maintenance[0].At.IsZero() {
		t.Errorf("maintenance = %+v", d.Maintenance)
	}
	d = post("operator", base+"/decommission", decommissionBody(), http.StatusOK)
	if d.Lifecycle.State != fleet.StateDecommissioned || d.EndOfLife.DecommissionedAt == nil ||
		d.EndOfLife.Wipe == nil || d.EndOfLife.Wipe.At.IsZero() || d.EndOfLife.DecommissionReason != "end of contract" {
		t.Fatalf("after decommission: state %s end of life %+v", d.Lifecycle.State, d.EndOfLife)
	}
	d = post("admin", base+"/disposal", map[string]any{"method": "recycle", "facility": "EcoPlant", "certificate": "R-77"}, http.StatusOK)
	if d.Lifecycle.State != fleet.StateDisposed || d.EndOfLife.Disposal == nil || d.EndOfLife.Disposal.Facility != "EcoPlant" {
		t.Fatalf("after disposal: state %s disposal %+v", d.Lifecycle.State, d.EndOfLife.Disposal)
	}

	// The state timeline has every change with its actor and reason.
	wantStates := []fleet.State{fleet.StateManufactured, fleet.StatePending, fleet.StateProvisioned, fleet.StateActive,
		fleet.StateSuspended, fleet.StateActive, fleet.StateDecommissioned, fleet.StateDisposed}
	var got []fleet.State
	for i, c := range d.Lifecycle.Changes {
		got = append(got, c.To)
		if i > 0 && (c.From != d.Lifecycle.Changes[i-1].To || c.Actor == "" || c.At.IsZero()) {
			t.Errorf("change %d = %+v", i, c)
		}
	}
	if !slices.Equal(got, wantStates) {
		t.Errorf("timeline = %v, want %v", got, wantStates)
	}
	if last := d.Lifecycle.Changes[len(d.Lifecycle.Changes)-1]; last.Actor != "admin/admin-token" || !d.Lifecycle.StateChangedAt.Equal(last.At) {
		t.Errorf("last change = %+v, stateChangedAt %v", last, d.Lifecycle.StateChangedAt)
	}

	// The history has one event per change, of the right type, and verifies.
	hist := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: base + "/history"}, http.StatusOK)
	var types []string
	for _, e := range hist.Items {
		types = append(types, e.Type)
	}
	wantTypes := []string{fleet.EventCreated, fleet.EventQC, fleet.EventStateChanged, fleet.EventStateChanged, fleet.EventTest,
		fleet.EventStateChanged, fleet.EventStateChanged, fleet.EventStateChanged, fleet.EventMaintenance, fleet.EventDecommission, fleet.EventDisposal}
	if !slices.Equal(types, wantTypes) {
		t.Errorf("history types = %v\nwant %v", types, wantTypes)
	}
	if e := hist.Items[2]; e.Actor != "operator/operator-token" || !strings.Contains(string(e.Data), `"to":"pending"`) {
		t.Errorf("state event = actor %s data %s", e.Actor, e.Data)
	}
	if e := hist.Items[9]; !strings.Contains(string(e.Data), `"crypto-erase"`) || !strings.Contains(string(e.Data), `"to":"decommissioned"`) {
		t.Errorf("decommission event data = %s", e.Data)
	}
	v := call[verifyResult](h, request{caller: "manufacturer", method: "GET", path: base + "/history/verify"}, http.StatusOK)
	if !v.OK || v.Events != len(wantTypes) || v.Break != nil {
		t.Errorf("verify = %+v", v)
	}

	// The passport tells the same life in order, in JSON and Markdown.
	p := call[fleet.Passport](h, request{caller: "installer", method: "GET", path: base + "/passport"}, http.StatusOK)
	if !p.History.Verified || p.History.Events != len(wantTypes) || p.Manufacturing.BOM.Count != 3 ||
		p.Lifecycle.State != fleet.StateDisposed || len(p.Maintenance) != 1 || p.EndOfLife.Disposal == nil {
		t.Errorf("passport = verified %v events %d bom %d state %s", p.History.Verified, p.History.Events, p.Manufacturing.BOM.Count, p.Lifecycle.State)
	}
	w := h.do(request{caller: "auditor", method: "GET", path: base + "/passport?format=md"})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Fatalf("markdown passport: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	md := w.Body.String()
	for _, want := range []string{"# Device passport: gw-100 SN-WALK-1", "## 2. Manufacturing", "3 components", "## 8. End of life",
		"EcoPlant", "Verification: OK, 11 events"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown passport lacks %q", want)
		}
	}
}

// TestRefurbish checks that disposal by refurbishment moves the device to
// refurbished, from where it may start a new life.
func TestRefurbish(t *testing.T) {
	h := newHarness(t)
	d := h.deviceIn(factory1, fleet.StateDecommissioned)
	base := "/v1/devices/" + d.ID
	d = call[*fleet.Device](h, request{caller: "operator", method: "POST", path: base + "/disposal", body: `{"method":"refurbish"}`}, http.StatusOK)
	if d.Lifecycle.State != fleet.StateRefurbished || d.EndOfLife.Disposal.Method != "refurbish" {
		t.Fatalf("state %s disposal %+v", d.Lifecycle.State, d.EndOfLife.Disposal)
	}
	d = call[*fleet.Device](h, request{caller: "operator", method: "POST", path: base + "/state", body: `{"state":"manufactured","reason":"refurbished unit"}`}, http.StatusOK)
	if d.Lifecycle.State != fleet.StateManufactured {
		t.Errorf("state = %s", d.Lifecycle.State)
	}
}

// TestTamperedHistory alters one stored event behind the API's back and
// checks that verification names that event as the first broken link,
// in the device history, the passport and the fleet audit log.
func TestTamperedHistory(t *testing.T) {
	h := newHarness(t)
	d := h.deviceIn(factory1, fleet.StateActive) // events 1..4
	base := "/v1/devices/" + d.ID
	call[*fleet.Device](h, request{caller: "admin", method: "PATCH", path: base, body: `{"attributes":{"site":"north"}}`}, http.StatusOK)

	v := call[verifyResult](h, request{caller: "auditor", method: "GET", path: base + "/history/verify"}, http.StatusOK)
	if !v.OK || v.Events != 5 {
		t.Fatalf("before tampering: %+v", v)
	}
	res := h.exec("UPDATE events SET data = ? WHERE subject = ? AND seq = ?", `{"from":"pending","to":"active"}`, d.ID, 3)
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered with %d rows", n)
	}
	v = call[verifyResult](h, request{caller: "auditor", method: "GET", path: base + "/history/verify"}, http.StatusOK)
	if v.OK || v.Break == nil || v.Break.Seq != 3 || v.Events != 5 || !strings.Contains(v.Break.Reason, "hash") {
		t.Errorf("after tampering: %+v, want a break at seq 3", v)
	}
	p := call[fleet.Passport](h, request{caller: "auditor", method: "GET", path: base + "/passport"}, http.StatusOK)
	if p.History.Verified || p.History.Break == nil || p.History.Break.Seq != 3 {
		t.Errorf("passport history = %+v", p.History)
	}

	// The fleet audit log: tokens created by the harness are its events.
	av := call[verifyResult](h, request{caller: "auditor", method: "GET", path: "/v1/audit-log/verify"}, http.StatusOK)
	if !av.OK || av.Events == 0 {
		t.Fatalf("audit log before tampering: %+v", av)
	}
	h.exec("UPDATE events SET actor = ? WHERE subject = ? AND seq = ?", "admin/someone-else", fleet.FleetSubject, 2)
	av = call[verifyResult](h, request{caller: "admin", method: "GET", path: "/v1/audit-log/verify"}, http.StatusOK)
	if av.OK || av.Break == nil || av.Break.Seq != 2 {
		t.Errorf("audit log after tampering: %+v, want a break at seq 2", av)
	}
}
