package store

import (
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// benchCount times CountDevices over the benchmark fleet, which the list
// benchmark cannot show: a count visits every match, not one page. Each
// filter runs five times; the first run reads cold pages.
func benchCount(t *testing.T, s *Store) {
	ctx := t.Context()
	for _, q := range []struct {
		name string
		f    DeviceFilter
	}{
		{"none", DeviceFilter{}},
		{"model (1/20)", DeviceFilter{Model: "m03"}},
		{"factory (1/5)", DeviceFilter{Factory: "f0"}},
		{"state common (60%)", DeviceFilter{State: fleet.StateActive}},
		{"state rare (1%)", DeviceFilter{State: fleet.StateRejected}},
		{"tag (10%)", DeviceFilter{Tag: "pilot"}},
		{"attr (10%)", DeviceFilter{Attributes: map[string]string{"fw": "1.2.0"}}},
		{"component (10%)", DeviceFilter{Component: "esp32"}},
		{"serial prefix (1/20)", DeviceFilter{SerialPrefix: "SN-m03-"}},
		{"factory+model", DeviceFilter{Factory: "f0", Model: "m03"}},
		{"factory+attr+component", DeviceFilter{Factory: "f0", Attributes: map[string]string{"region": "r1"}, Component: "esp32"}},
	} {
		var lat []time.Duration
		var n int64
		for range 5 {
			t0 := time.Now()
			var err error
			if n, err = s.CountDevices(ctx, q.f); err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			lat = append(lat, time.Since(t0))
		}
		p50, _, worst := percentiles(lat)
		t.Logf("COUNT %s %-26s %8d devices  first %8v  p50 %8v  max %8v", s.Backend(), q.name, n,
			lat[0].Round(10*time.Microsecond), p50, worst)
	}
}
