package api

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// TestDeviceMetrics calls the handler directly: the route joins the table
// when the gateway is wired into the server.
func TestDeviceMetrics(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.newDevice(factory1)
	start := time.Now().UTC().Truncate(5 * time.Minute)
	for _, node := range []string{"n1", "n2"} {
		err := h.st.SaveMeterWindows(ctx, node, []store.MeterWindow{{
			DeviceID: d.ID, Start: start, Seconds: 300, Connects: 1, MsgsIn: 10,
			Disconnects: map[string]int64{"client": 1}, Topics: []string{"devices/" + d.ID + "/" + node}, SourceIPs: []string{"10.0.0.1"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := h.st.SavePresence(ctx, []store.Presence{{DeviceID: d.ID, Connected: true, Node: "n2", ConnectedAt: start, LastSeen: start}}); err != nil {
		t.Fatal(err)
	}
	get := func(query string) (*DeviceMetrics, error) {
		r := httptest.NewRequest("GET", "/v1/devices/"+d.ID+"/metrics"+query, nil)
		r.SetPathValue("id", d.ID)
		return h.srv.deviceMetrics(r)
	}
	m, err := get("")
	if err != nil {
		t.Fatal(err)
	}
	if m.Presence == nil || !m.Presence.Connected || len(m.Windows) != 1 {
		t.Fatalf("metrics = %+v", m)
	}
	w := m.Windows[0]
	if w.Connects != 2 || w.MsgsIn != 20 || w.Disconnects["client"] != 2 || len(w.Topics) != 2 || len(w.SourceIPs) != 1 {
		t.Fatalf("window summed over nodes = %+v", w)
	}
	if m, err := get("?to=" + start.Format(time.RFC3339)); err != nil || len(m.Windows) != 0 {
		t.Fatalf("windows before the first = %v, %v", m, err)
	}
	for _, bad := range []string{"?from=yesterday", "?from=2026-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		if _, err := get(bad); err == nil {
			t.Errorf("query %s accepted", bad)
		}
	}
	if routes := gatewayRoutes(); len(routes) != 1 || routes[0].pattern != "/v1/devices/{id}/metrics" {
		t.Fatalf("gateway routes = %+v", routes)
	}
}
