package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/store"
)

// TestRegionalCAAPI: "ca": true gives a region its own operational CA at
// creation or later, shown as caId; a second one, an unknown region, an
// invalid change and a taken name are refused with nothing stored; a
// drain between regions with different CAs tells the device to renew.
func TestRegionalCAAPI(t *testing.T) {
	h := newHarness(t)
	regionalCAs := func() []store.CA {
		t.Helper()
		rows, err := h.st.ListCAs(context.Background(), store.CAFilter{Purpose: string(ca.PurposeRegional)})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	withCA := regionBody("eu")
	withCA["ca"] = true
	eu := call[RegionInfo](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: withCA}, http.StatusCreated)
	cas := regionalCAs()
	if eu.CAID == "" || len(cas) != 1 || cas[0].ID != eu.CAID || cas[0].Factory != "eu" || cas[0].Status != store.CAActive {
		t.Fatalf("created %+v; regional CAs %+v", eu, cas)
	}
	us := call[RegionInfo](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: regionBody("us")}, http.StatusCreated)
	if us.CAID != "" {
		t.Fatalf("a region created without ca has CA %s", us.CAID)
	}
	if got := call[RegionInfo](h, request{caller: "auditor", method: "GET", path: "/v1/regions/eu"}, http.StatusOK); got.CAID != eu.CAID {
		t.Errorf("GET eu caId = %q, want %q", got.CAID, eu.CAID)
	}

	// Bad input: a clear error, no CA and no change stored.
	for _, tc := range []struct {
		name, method, path string
		body               map[string]any
		status             int
		want               string
	}{
		{"region that has a CA", "PATCH", "/v1/regions/eu", map[string]any{"ca": true}, http.StatusConflict, "own operational CA already"},
		{"unknown region", "PATCH", "/v1/regions/nowhere", map[string]any{"ca": true}, http.StatusNotFound, "nowhere"},
		{"invalid change", "PATCH", "/v1/regions/us", map[string]any{"ca": true, "weight": -1}, http.StatusBadRequest, "weight"},
		{"taken name", "POST", "/v1/regions", withCA, http.StatusConflict, "exists already"},
		{"invalid region", "POST", "/v1/regions", map[string]any{"name": "bad name!", "ca": true}, http.StatusBadRequest, "name"},
	} {
		w := h.do(request{caller: "operator", method: tc.method, path: tc.path, body: tc.body})
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %s; want %d mentioning %q", tc.name, w.Code, w.Body, tc.status, tc.want)
		}
	}
	if w := h.do(request{caller: "auditor", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"ca": true}}); w.Code != http.StatusForbidden {
		t.Errorf("auditor adds a CA: %d", w.Code)
	}
	if n := len(regionalCAs()); n != 1 {
		t.Fatalf("refused requests left %d regional CAs, want 1", n)
	}
	if g, _ := h.st.Region(context.Background(), "us"); g.Version != 1 || g.Weight != 2 {
		t.Fatalf("refused requests changed us: %+v", g)
	}

	// Later, with another change in the same request.
	up := call[RegionInfo](h, request{caller: "operator", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"ca": true, "weight": 3}}, http.StatusOK)
	if up.CAID == "" || up.CAID == eu.CAID || up.Weight != 3 || len(regionalCAs()) != 2 {
		t.Fatalf("PATCH us ca = %+v", up)
	}
	// Rotating a region's CA: the region names it; a CA-less region, a
	// missing region and a region on another purpose are refused, and
	// only the admin rotates.
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"no region", map[string]any{"purpose": "regional"}, http.StatusBadRequest, "region"},
		{"region on the operational CA", map[string]any{"purpose": "operational", "region": "eu"}, http.StatusBadRequest, "region"},
		{"region without its own CA", map[string]any{"purpose": "regional", "region": "ap-none"}, http.StatusNotFound, "regions update NAME --ca"},
	} {
		w := h.do(request{caller: "admin", method: "POST", path: "/v1/cas/rotate", body: tc.body})
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("rotate, %s: %d %s; want %d mentioning %q", tc.name, w.Code, w.Body, tc.status, tc.want)
		}
	}
	if w := h.do(request{caller: "operator", method: "POST", path: "/v1/cas/rotate", body: map[string]any{"purpose": "regional", "region": "us"}}); w.Code != http.StatusForbidden {
		t.Errorf("operator rotates a regional CA: %d", w.Code)
	}
	if n := len(regionalCAs()); n != 2 {
		t.Fatalf("refused rotations left %d regional CAs, want 2", n)
	}
	rotated := call[store.CA](h, request{caller: "admin", method: "POST", path: "/v1/cas/rotate", body: map[string]any{"purpose": "regional", "region": "us", "overlap": "1h"}}, http.StatusCreated)
	if rotated.ID == up.CAID || rotated.Factory != "us" {
		t.Fatalf("rotated us CA = %+v", rotated)
	}
	if got := call[RegionInfo](h, request{caller: "auditor", method: "GET", path: "/v1/regions/us"}, http.StatusOK); got.CAID != rotated.ID {
		t.Fatalf("us names CA %s after rotation, want %s", got.CAID, rotated.ID)
	}
	up.CAID = rotated.ID

	all := call[list[RegionInfo]](h, request{caller: "auditor", method: "GET", path: "/v1/regions"}, http.StatusOK)
	if len(all.Items) != 2 || all.Items[0].CAID != eu.CAID || all.Items[1].CAID != up.CAID {
		t.Errorf("list = %+v", all.Items)
	}

	// Draining eu (its CA) to us (another): the command says renew.
	homeDevice(t, h, "eu", `{"eu":10,"us":40}`)
	call[DrainResult](h, request{caller: "operator", method: "POST", path: "/v1/regions/eu/drain", body: map[string]any{}}, http.StatusOK)
	c, _ := h.sent.last()
	var payload RehomePayload
	if err := json.Unmarshal(c.Payload, &payload); err != nil || payload.Region != "us" || !payload.Renew {
		t.Fatalf("rehome command %s: want us and renew", c.Payload)
	}
	// Between two regions of the shared CA: no renewal.
	for _, name := range []string{"ap", "sa"} {
		call[RegionInfo](h, request{caller: "operator", method: "POST", path: "/v1/regions", body: regionBody(name)}, http.StatusCreated)
	}
	call[RegionInfo](h, request{caller: "operator", method: "PATCH", path: "/v1/regions/us", body: map[string]any{"status": "disabled"}}, http.StatusOK)
	homeDevice(t, h, "ap", `{"ap":10,"sa":40}`)
	call[DrainResult](h, request{caller: "operator", method: "POST", path: "/v1/regions/ap/drain", body: map[string]any{}}, http.StatusOK)
	c, _ = h.sent.last()
	payload = RehomePayload{}
	if err := json.Unmarshal(c.Payload, &payload); err != nil || payload.Region != "sa" || payload.Renew {
		t.Fatalf("rehome command %s: want sa without renew", c.Payload)
	}
}
