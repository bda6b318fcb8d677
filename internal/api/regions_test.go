package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

func regionBody(name string) map[string]any {
	return map[string]any{"name": name, "provisionUrl": "https://" + name + ".example:9443", "mqttUrl": "mqtts://" + name + ".example:8883",
		"probeUrl": "https://" + name + ".example:9443/v1/probe", "location": map[string]any{"lat": 48.85, "lon": 2.35}, "weight": 2}
}

// homeDevice makes a device whose home is region, with stored medians.
func homeDevice(t *testing.T, h *harness, home string, medians string) *fleet.Device {
	t.Helper()
	d := h.newDevice(factory1)
	if _, err := h.st.UpdateDevice(context.Background(), d.ID, 0, "test/setup", func(d *fleet.Device) (*store.Change, error) {
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		d.Attributes[region.AttrHome], d.Attributes[region.AttrMeasurements] = home, medians
		return &store.Change{Type: "test.homed"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRegionsAPI(t *testing.T) {
	h := newHarness(t)
	got := call[store.Region](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: regionBody("eu")}, http.StatusCreated)
	if got.Status != store.RegionEnabled || got.Version != 1 || got.Location == nil || got.Weight != 2 {
		t.Fatalf("created %+v", got)
	}
	call[store.Region](h, request{caller: "admin", method: "POST", path: "/v1/regions", body: regionBody("us")}, http.StatusCreated)
	homeDevice(t, h, "eu", `{"eu":10,"us":40}`)
	homeDevice(t, h, "eu", `{"eu":10,"us":40}`)

	info := call[RegionInfo](h, request{caller: "auditor", method: "GET", path: "/v1/regions/eu"}, http.StatusOK)
	if info.Devices != 2 || info.Name != "eu" {
		t.Errorf("GET eu = %+v", info)
	}
	all := call[list[RegionInfo]](h, request{caller: "auditor", method: "GET", path: "/v1/regions"}, http.StatusOK)
	if len(all.Items) != 2 || all.Items[0].Devices != 2 || all.Items[1].Devices != 0 {
		t.Errorf("list = %+v", all.Items)
	}
	// Weight omitted is 1, as in the CLI; an explicit 0 stays 0 (no share).
	implicit := map[string]any{"name": "ap", "provisionUrl": "https://ap.example:9443", "mqttUrl": "mqtts://ap.example:8883", "probeUrl": "https://ap.example:9443/v1/probe"}
	if g := call[store.Region](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: implicit}, http.StatusCreated); g.Weight != 1 {
		t.Errorf("region created without a weight has weight %d, want 1", g.Weight)
	}
	implicit["name"], implicit["weight"] = "sa", 0
	if g := call[store.Region](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: implicit}, http.StatusCreated); g.Weight != 0 {
		t.Errorf("region created with weight 0 has weight %d", g.Weight)
	}
	for _, name := range []string{"ap", "sa"} {
		if w := h.do(request{caller: "admin", method: "DELETE", path: "/v1/regions/" + name}); w.Code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", name, w.Code, w.Body)
		}
	}
	up := call[store.Region](h, request{caller: "operator", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"weight": 5, "clearLocation": true}}, http.StatusOK)
	if up.Weight != 5 || up.Location != nil || up.Version != 2 || up.ProvisionURL != "https://us.example:9443" {
		t.Errorf("patched %+v", up)
	}

	// Bad input: a clear error, nothing stored.
	for _, tc := range []struct {
		name string
		rq   request
		code int
		err  string
	}{
		{"duplicate", request{method: "POST", path: "/v1/regions", body: regionBody("eu")}, 409, codeDuplicate},
		{"name with a slash", request{method: "POST", path: "/v1/regions", body: regionBody("eu/west")}, 400, codeValidationFailed},
		{"plain-http provision URL", request{method: "POST", path: "/v1/regions", body: map[string]any{"name": "x", "provisionUrl": "http://x", "mqttUrl": "mqtts://x", "probeUrl": "https://x"}}, 400, codeValidationFailed},
		{"unknown field", request{method: "POST", path: "/v1/regions", body: map[string]any{"name": "x", "speed": 1}}, 400, ""},
		{"bad status", request{method: "PATCH", path: "/v1/regions/us", body: map[string]any{"status": "paused"}}, 400, codeValidationFailed},
		{"latitude out of range", request{method: "PATCH", path: "/v1/regions/us", body: map[string]any{"location": map[string]any{"lat": 91, "lon": 0}}}, 400, codeValidationFailed},
		{"unknown region", request{method: "PATCH", path: "/v1/regions/mars", body: map[string]any{"weight": 1}}, 404, codeNotFound},
		{"delete a region with devices", request{method: "DELETE", path: "/v1/regions/eu"}, 409, codeRegionInUse},
		{"drain batch too large", request{method: "POST", path: "/v1/regions/eu/drain", body: map[string]any{"batch": 5000}}, 400, codeValidationFailed},
		{"drain unknown", request{method: "POST", path: "/v1/regions/mars/drain", body: map[string]any{}}, 404, codeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rq.caller = "admin"
			w := h.do(tc.rq)
			if w.Code != tc.code || (tc.err != "" && errorOf(t, w).Code != tc.err) {
				t.Errorf("%d %s, want %d %s", w.Code, w.Body, tc.code, tc.err)
			}
		})
	}
	if g, _ := h.st.Region(context.Background(), "us"); g.Version != 2 || g.Status != store.RegionEnabled {
		t.Errorf("a refused change was stored: %+v", g)
	}
	// The refused deletion says how many devices and what to do.
	w0 := h.do(request{caller: "operator", method: "DELETE", path: "/v1/regions/eu"})
	if e := errorOf(t, w0); w0.Code != http.StatusConflict || e.Code != codeRegionInUse ||
		!strings.Contains(e.Message, "home to 2 devices") || !strings.Contains(e.Message, "muster regions drain eu") {
		t.Errorf("delete of a region with devices: %d %s", w0.Code, w0.Body)
	}
	if g, err := h.st.Region(context.Background(), "eu"); err != nil || g.Version != 1 {
		t.Errorf("a refused delete changed eu: %+v, %v", g, err)
	}

	// Draining eu with us disabled: nowhere to go, nothing moves.
	call[store.Region](h, request{caller: "admin", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"status": "disabled"}}, http.StatusOK)
	w := h.do(request{caller: "admin", method: "POST", path: "/v1/regions/eu/drain", body: map[string]any{"batch": 1}})
	if w.Code != http.StatusConflict || errorOf(t, w).Code != codeNoRegion {
		t.Fatalf("drain with no other region: %d %s", w.Code, w.Body)
	}
	if g, _ := h.st.Region(context.Background(), "eu"); g.Status != store.RegionEnabled {
		t.Fatalf("a refused drain changed the region: %+v", g)
	}
	// With us enabled, a batch at a time, each device told over the gateway.
	call[store.Region](h, request{caller: "admin", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"status": "enabled"}}, http.StatusOK)
	sentBefore := len(h.sent.sent)
	first := call[DrainResult](h, request{caller: "operator", method: "POST", path: "/v1/regions/eu/drain", body: map[string]any{"batch": 1}}, http.StatusOK)
	if len(first.Moved) != 1 || first.Remaining != 1 || first.Moved[0].To != "us" {
		t.Fatalf("first drain batch = %+v", first)
	}
	second := call[DrainResult](h, request{caller: "operator", method: "POST", path: "/v1/regions/eu/drain", body: map[string]any{"batch": 1}}, http.StatusOK)
	if len(second.Moved) != 1 || second.Remaining != 0 {
		t.Fatalf("second drain batch = %+v", second)
	}
	if n := len(h.sent.sent) - sentBefore; n != 2 {
		t.Fatalf("%d rehome commands sent, want 2", n)
	}
	c, _ := h.sent.last()
	var payload RehomePayload
	if err := json.Unmarshal(c.Payload, &payload); err != nil || c.Topic != RehomeCommand || !c.Retain || payload.Region != "us" || payload.MQTTURL != "mqtts://us.example:8883" {
		t.Errorf("rehome command = %+v (%s)", c, c.Payload)
	}
	events := call[list[fleet.Event]](h, request{caller: "admin", method: "GET", path: "/v1/devices/" + second.Moved[0].DeviceID + "/history"}, http.StatusOK)
	if e := events.Items[len(events.Items)-1]; e.Type != region.EventRehomed {
		t.Errorf("last event %s", e.Type)
	}
	if g := call[RegionInfo](h, request{caller: "admin", method: "GET", path: "/v1/regions/eu"}, http.StatusOK); g.Status != store.RegionDraining || g.Devices != 0 {
		t.Errorf("eu after drain: %+v", g)
	}
	// Empty now, it can be deleted.
	if w := h.do(request{caller: "admin", method: "DELETE", path: "/v1/regions/eu"}); w.Code != http.StatusNoContent {
		t.Errorf("delete drained region: %d %s", w.Code, w.Body)
	}
}

// TestRegionCAThroughAPI: POST with ca creates the region and its CA
// together; DELETE of the empty region retires that CA (it no longer
// issues for the name, stays listed as retiring); the name created again
// gets a new CA. A name that still has an active CA is refused with
// nothing stored.
func TestRegionCAThroughAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	body := regionBody("ap")
	body["ca"] = true
	first := call[RegionInfo](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: body}, http.StatusCreated)
	if first.CAID == "" || first.Version != 1 {
		t.Fatalf("created %+v", first)
	}
	if got := call[RegionInfo](h, request{caller: "auditor", method: "GET", path: "/v1/regions/ap"}, http.StatusOK); got.CAID != first.CAID {
		t.Errorf("GET ap = %+v, want CA %s", got, first.CAID)
	}
	if w := h.do(request{caller: "operator", method: "DELETE", path: "/v1/regions/ap"}); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	old, err := h.st.GetCA(ctx, first.CAID)
	if err != nil || old.Status != store.CARetiring {
		t.Errorf("CA of the deleted region = %+v, %v; want retiring", old, err)
	}
	if _, err := h.cas.RegionalCA(ctx, "ap"); err == nil {
		t.Errorf("the deleted region's CA still issues")
	}
	second := call[RegionInfo](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: body}, http.StatusCreated)
	if second.CAID == "" || second.CAID == first.CAID {
		t.Errorf("re-created region's CA = %q, want a new one (not %s)", second.CAID, first.CAID)
	}
	newCA, _ := h.st.GetCA(ctx, second.CAID)
	if newCA == nil || newCA.SubjectKeyID == old.SubjectKeyID {
		t.Errorf("re-created region's CA has the old subject key id %s", old.SubjectKeyID)
	}

	// A CA left active under a name (as deletions before this release
	// left them): refused before anything is written.
	if err := h.st.InsertCA(ctx, &store.CA{Purpose: store.RegionalCAPurpose, Factory: "sa", KeyLabel: old.KeyLabel, CertPEM: old.CertPEM,
		SubjectKeyID: old.SubjectKeyID, NotAfter: old.NotAfter}, "test/setup"); err != nil {
		t.Fatal(err)
	}
	before, _ := h.st.ListCAs(ctx, store.CAFilter{})
	body = regionBody("sa")
	body["ca"] = true
	w := h.do(request{caller: "operator", method: "POST", path: "/v1/regions", body: body})
	if w.Code != http.StatusConflict || errorOf(t, w).Code != codeDuplicate {
		t.Errorf("create with a CA left active: %d %s", w.Code, w.Body)
	}
	if _, err := h.st.Region(ctx, "sa"); err == nil {
		t.Errorf("a refused create stored the region")
	}
	if after, _ := h.st.ListCAs(ctx, store.CAFilter{}); len(after) != len(before) {
		t.Errorf("a refused create stored %d CAs", len(after)-len(before))
	}
	if w := h.do(request{caller: "operator", method: "DELETE", path: "/v1/regions/nowhere"}); w.Code != http.StatusNotFound {
		t.Errorf("delete of an unknown region: %d %s", w.Code, w.Body)
	}
}
