package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestCountDevices checks that GET /v1/devices/count counts what
// GET /v1/devices lists, filters and manufacturer scope included.
func TestCountDevices(t *testing.T) {
	h := newHarness(t)
	count := func(caller, query string) int64 {
		t.Helper()
		return call[deviceTotal](h, request{caller: caller, method: "GET", path: "/v1/devices/count" + query}, http.StatusOK).Count
	}
	if n := count("auditor", ""); n != 0 {
		t.Fatalf("count of an empty fleet = %d, want 0", n)
	}
	for range 3 {
		h.newDevice(factory1)
	}
	tagged := h.newDevice(factory2)
	call[*fleet.Device](h, request{caller: "admin", method: "PATCH", path: "/v1/devices/" + tagged.ID,
		body: `{"attributes":{"fw":"2.0"},"inventory":{"tags":["beta"]}}`}, http.StatusOK)
	h.deviceIn(factory2, fleet.StateActive)

	for _, c := range []struct {
		caller, query string
		want          int64
	}{
		{"auditor", "", 5},
		{"installer", "?factory=" + factory1, 3},
		{"operator", "?factory=" + factory2, 2},
		{"admin", "?model=" + testModel, 5},
		{"admin", "?model=other", 0},
		{"admin", "?state=active", 1},
		{"admin", "?state=manufactured&factory=" + factory2, 1},
		{"admin", "?attr=fw=2.0", 1},
		{"admin", "?attr=fw=2.0&tag=beta&factory=" + factory2, 1},
		{"admin", "?attr=fw=2.0&factory=" + factory1, 0},
		{"admin", "?serial=SN-0000", 5},
		{"admin", "?serial=" + tagged.Identity.Serial, 1},
		{"admin", "?component=mainboard", 0},
		// A manufacturer counts its own factory's devices only, as it lists.
		{"manufacturer", "", 3},
		{"manufacturer", "?factory=" + factory1, 3},
		{"manufacturer", "?attr=fw=2.0", 0},
		{manufacturer2, "", 2},
		{manufacturer2, "?state=active", 1},
	} {
		if got := count(c.caller, c.query); got != c.want {
			t.Errorf("count%s as %s = %d, want %d", c.query, c.caller, got, c.want)
		}
		// The count agrees with the listing.
		listPath := "/v1/devices?limit=1000"
		if c.query != "" {
			listPath += "&" + c.query[1:]
		}
		page := call[devicePage](h, request{caller: c.caller, method: "GET", path: listPath}, http.StatusOK)
		if int64(len(page.Items)) != c.want {
			t.Errorf("list%s as %s has %d devices, count says %d", c.query, c.caller, len(page.Items), c.want)
		}
	}
}

// TestCountDevicesRefuses checks that bad filters, paging parameters and
// another factory's name are refused with an error and no count.
func TestCountDevicesRefuses(t *testing.T) {
	h := newHarness(t)
	h.newDevice(factory2)
	for _, c := range []struct {
		caller, query string
		status        int
		code, field   string
	}{
		{"admin", "?state=actve", http.StatusBadRequest, codeBadQuery, "state"},
		{"admin", "?attr=fw", http.StatusBadRequest, codeBadQuery, "attr"},
		{"admin", "?attr=fw=1&attr=fw=2", http.StatusBadRequest, codeBadQuery, "attr"},
		{"admin", "?limit=10", http.StatusBadRequest, codeBadQuery, "limit"},
		{"admin", "?cursor=x", http.StatusBadRequest, codeBadQuery, "cursor"},
		{"admin", "?colour=red", http.StatusBadRequest, codeBadQuery, "colour"},
		{"admin", "?model=a&model=b", http.StatusBadRequest, codeBadQuery, "model"},
		{"manufacturer", "?factory=" + factory2, http.StatusForbidden, codeForbidden, "factory"},
	} {
		w := h.do(request{caller: c.caller, method: "GET", path: "/v1/devices/count" + c.query})
		if w.Code != c.status {
			t.Errorf("count%s as %s: status %d, want %d: %s", c.query, c.caller, w.Code, c.status, w.Body)
			continue
		}
		e := errorOf(t, w)
		if e.Code != c.code || e.Field != c.field || e.Message == "" {
			t.Errorf("count%s: error %+v, want code %s on field %s with a message", c.query, e, c.code, c.field)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if _, has := body["count"]; has {
			t.Errorf("count%s: refused answer still carries a count: %s", c.query, w.Body)
		}
	}
	// Without a token nothing is counted.
	if w := h.do(request{method: "GET", path: "/v1/devices/count"}); w.Code != http.StatusUnauthorized {
		t.Errorf("count without a token: status %d, want 401", w.Code)
	}
	// "count" is the route, not a device id: a device's own path still
	// reaches the device.
	d := h.newDevice(factory1)
	if got := call[*fleet.Device](h, request{caller: "admin", method: "GET", path: "/v1/devices/" + d.ID}, http.StatusOK); got.ID != d.ID {
		t.Errorf("GET /v1/devices/%s = %s", d.ID, got.ID)
	}
}
