package region

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// testRegions: Paris, New York and Tokyo, enabled, weights 1/1/1, plus a
// draining and a disabled region that must never be chosen.
func testRegions() []Region {
	mk := func(name string, lat, lon float64, status string) Region {
		return Region{Name: name, ProvisionURL: "https://" + name + ".example", MQTTURL: "mqtts://" + name + ".example",
			ProbeURL: "https://" + name + ".example/v1/probe", Location: &Location{Lat: lat, Lon: lon}, Weight: 1, Status: status}
	}
	return []Region{
		mk("eu", 48.8566, 2.3522, store.RegionEnabled),
		mk("us", 40.7128, -74.0060, store.RegionEnabled),
		mk("ap", 35.6762, 139.6503, store.RegionEnabled),
		mk("old", 48.86, 2.35, store.RegionDraining),
		mk("off", 48.86, 2.35, store.RegionDisabled),
	}
}

func ms(v ...float64) map[string]Measurement {
	names := []string{"eu", "us", "ap", "old", "off"}
	out := map[string]Measurement{}
	for i, x := range v {
		if !math.IsNaN(x) {
			out[names[i]] = Measurement{MedianMs: x}
		}
	}
	return out
}

func choose(t *testing.T, p Policy, regions []Region, in Input) *Decision {
	t.Helper()
	if in.DeviceID == "" {
		in.DeviceID = "dev_1"
	}
	d, err := (&Allocator{}).Choose(context.Background(), p, regions, in)
	if err != nil {
		t.Fatalf("Choose: %v", err)
	}
	return d
}

func TestLowestLatency(t *testing.T) {
	nan := math.NaN()
	lat := Policy{Policy: PolicyLowestLatency}
	for _, tc := range []struct {
		name     string
		in       Input
		want, by string
		reason   string
	}{
		{"smallest median wins", Input{Measurements: ms(40, 10, 120)}, "us", PolicyLowestLatency, ""},
		{"draining and disabled regions are no candidates, however fast", Input{Measurements: ms(40, 30, 120, 1, 1)}, "us", PolicyLowestLatency, ""},
		{"a tie goes to the current home", Input{Home: "ap", Measurements: ms(20, 20, 20)}, "ap", PolicyLowestLatency, ""},
		{"a tie without home goes to the first name", Input{Measurements: ms(20, 20, 20)}, "ap", PolicyLowestLatency, ""},
		{"ties are at 0.1 ms", Input{Measurements: ms(20.04, 20.01, nan)}, "eu", PolicyLowestLatency, ""},
		{"a missing region is skipped", Input{Measurements: ms(nan, 50, nan)}, "us", PolicyLowestLatency, ""},
		{"negative, zero and too large are implausible", Input{Measurements: ms(-5, 0, 20000)}, "", PolicyWeighted, "no usable measurement"},
		{"nothing measured falls back to weighted", Input{}, "", PolicyWeighted, "no usable measurement"},
		{"unknown regions are ignored", Input{Measurements: map[string]Measurement{"mars": {MedianMs: 1}, "eu": {MedianMs: 30}}}, "eu", PolicyLowestLatency, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := choose(t, lat, testRegions(), tc.in)
			if d.DecidedBy != tc.by || (tc.want != "" && d.Name != tc.want) || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("chose %s by %s (%q), want %s by %s", d.Name, d.DecidedBy, d.Reason, tc.want, tc.by)
			}
			if d.Name == "old" || d.Name == "off" {
				t.Errorf("chose %s, which is not enabled", d.Name)
			}
		})
	}
	// A tie broken by weight: us weighs more.
	rs := testRegions()
	rs[1].Weight = 5
	if d := choose(t, lat, rs, Input{Measurements: ms(20, 20, 30)}); d.Name != "us" {
		t.Errorf("tie between eu (w1) and us (w5) went to %s", d.Name)
	}
}

func TestMeasurementSamples(t *testing.T) {
	for _, tc := range []struct {
		m    Measurement
		want float64
		ok   bool
	}{
		{Measurement{MedianMs: 12}, 12, true},
		// With samples the device's median is ignored and recomputed.
		{Measurement{MedianMs: 1, SamplesMs: []float64{30, 10, 20}}, 20, true},
		{Measurement{SamplesMs: []float64{10, 20, 30, 40}}, 25, true},
		{Measurement{SamplesMs: []float64{10, -1, 30}}, 0, false},
		{Measurement{SamplesMs: []float64{10, math.Inf(1)}}, 0, false},
		{Measurement{SamplesMs: make([]float64, MaxSamples+1)}, 0, false},
		{Measurement{MedianMs: math.NaN()}, 0, false},
	} {
		got, ok := tc.m.Effective()
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%+v: Effective = %v, %v; want %v, %v", tc.m, got, ok, tc.want, tc.ok)
		}
	}
}

func TestGeo(t *testing.T) {
	geo := Policy{Policy: PolicyGeo}
	london := &Location{Lat: 51.5074, Lon: -0.1278}
	d := choose(t, geo, testRegions(), Input{Location: london})
	if d.Name != "eu" || d.DecidedBy != PolicyGeo {
		t.Fatalf("London went to %s by %s", d.Name, d.DecidedBy)
	}
	// Paris-London is about 344 km.
	if km := d.DistanceKm["eu"]; km < 330 || km > 360 {
		t.Errorf("London-Paris = %.1f km", km)
	}
	if _, ok := d.DistanceKm["old"]; ok {
		t.Error("a draining region's distance was considered")
	}
	if d := choose(t, geo, testRegions(), Input{Location: &Location{Lat: 37.77, Lon: -122.42}}); d.Name != "us" {
		t.Errorf("San Francisco went to %s", d.Name)
	}
	// The template's location stands in when the device says nothing.
	geo.Location = &Location{Lat: 34.69, Lon: 135.50} // Osaka
	if d := choose(t, geo, testRegions(), Input{}); d.Name != "ap" || d.DecidedBy != PolicyGeo {
		t.Errorf("Osaka by template went to %s by %s", d.Name, d.DecidedBy)
	}
	// No location anywhere, or no region with one: weighted decides.
	if d := choose(t, Policy{Policy: PolicyGeo}, testRegions(), Input{}); d.DecidedBy != PolicyWeighted || d.Reason == "" {
		t.Errorf("no location: decided by %s (%q)", d.DecidedBy, d.Reason)
	}
	rs := testRegions()
	for i := range rs {
		rs[i].Location = nil
	}
	if d := choose(t, Policy{Policy: PolicyGeo}, rs, Input{Location: london}); d.DecidedBy != PolicyWeighted {
		t.Errorf("no region location: decided by %s", d.DecidedBy)
	}
}

func TestWeighted(t *testing.T) {
	rs := testRegions()[:3]
	rs[0].Weight, rs[1].Weight, rs[2].Weight = 3, 1, 0
	counts := map[string]int{}
	first := map[string]string{}
	const n = 4000
	for i := range n {
		id := fmt.Sprintf("dev_%05d", i)
		d := choose(t, Policy{Policy: PolicyWeighted}, rs, Input{DeviceID: id})
		counts[d.Name]++
		first[id] = d.Name
		// Stable: the same device gets the same answer.
		if again := choose(t, Policy{Policy: PolicyWeighted}, rs, Input{DeviceID: id}); again.Name != d.Name {
			t.Fatalf("%s: %s then %s", id, d.Name, again.Name)
		}
	}
	if counts["ap"] != 0 {
		t.Errorf("a region of weight 0 got %d devices", counts["ap"])
	}
	// Shares follow the weights (3:1): 3000 expected, 5% slack for the hash.
	if eu := counts["eu"]; eu < 2850 || eu > 3150 {
		t.Errorf("eu (weight 3 of 4) got %d of %d", eu, n)
	}
	// Adding a region moves devices only to it.
	rs[2].Weight = 1
	moved := 0
	for id, was := range first {
		d := choose(t, Policy{Policy: PolicyWeighted}, rs, Input{DeviceID: id})
		if d.Name != was {
			moved++
			if d.Name != "ap" {
				t.Fatalf("%s moved from %s to %s when ap was added", id, was, d.Name)
			}
		}
	}
	if moved < n/10 || moved > n/3 {
		t.Errorf("adding a region of weight 1 (of 5) moved %d of %d", moved, n)
	}
	// No positive weight: the first name.
	for i := range rs {
		rs[i].Weight = 0
	}
	if d := choose(t, Policy{Policy: PolicyWeighted}, rs, Input{}); d.Name != "ap" {
		t.Errorf("all weights 0: %s", d.Name)
	}
}

func TestStatic(t *testing.T) {
	d := choose(t, Policy{Policy: PolicyStatic, Region: "ap"}, testRegions(), Input{Measurements: ms(5, 10, 200)})
	if d.Name != "ap" || d.DecidedBy != PolicyStatic {
		t.Errorf("static ap: %s by %s", d.Name, d.DecidedBy)
	}
	// A static region that is not enabled: the fallback decides, and says why.
	d = choose(t, Policy{Policy: PolicyStatic, Region: "old", Fallback: PolicyLowestLatency}, testRegions(), Input{Measurements: ms(40, 10, 200)})
	if d.Name != "us" || d.DecidedBy != PolicyLowestLatency || !strings.Contains(d.Reason, `"old" is not enabled`) {
		t.Errorf("static old: %s by %s (%q)", d.Name, d.DecidedBy, d.Reason)
	}
}

func TestHook(t *testing.T) {
	// The handler reads what the test sets under mu: a handler of a
	// timed-out case may still run when the next case starts.
	var mu sync.Mutex
	var got HookRequest
	answer := `{"region":"ap"}`
	delay := time.Duration(0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		answer, delay := answer, delay
		mu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "json please", http.StatusUnsupportedMediaType)
			return
		}
		var req HookRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = req
		mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		if answer == "500" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	p := Policy{Policy: PolicyHook, Hook: &AllocationHook{URL: srv.URL, Timeout: "200ms"}, Fallback: PolicyLowestLatency}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	in := Input{DeviceID: "dev_h", Serial: "SN-1", Template: "t", Measurements: ms(40, 10, 120), Location: &Location{Lat: 1, Lon: 2}}

	d := choose(t, p, testRegions(), in)
	if d.Name != "ap" || d.DecidedBy != PolicyHook {
		t.Fatalf("hook chose ap: got %s by %s (%q)", d.Name, d.DecidedBy, d.Reason)
	}
	mu.Lock()
	req := got
	mu.Unlock()
	if req.Device.ID != "dev_h" || req.Measurements["us"].MedianMs != 10 || req.Location == nil || len(req.Regions) != 3 {
		t.Errorf("hook request = %+v", req)
	}
	for _, r := range req.Regions {
		if r.Status != store.RegionEnabled {
			t.Errorf("hook was offered %s (%s)", r.Name, r.Status)
		}
	}

	for _, tc := range []struct {
		name, answer string
		delay        time.Duration
		reason       string
	}{
		{"timeout", `{"region":"ap"}`, 2 * time.Second, "deadline exceeded"},
		{"server error", "500", 0, "500"},
		{"not JSON", "ap", 0, "decode answer"},
		{"no region", `{}`, 0, "named no region"},
		{"a region that is not enabled", `{"region":"off"}`, 0, "not an enabled region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			answer, delay = tc.answer, tc.delay
			mu.Unlock()
			d := choose(t, p, testRegions(), in)
			if d.Name != "us" || d.DecidedBy != PolicyLowestLatency || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("fell back to %s by %s (%q), want us by lowest-latency with %q", d.Name, d.DecidedBy, d.Reason, tc.reason)
			}
		})
	}
}

func TestNoEnabledRegion(t *testing.T) {
	rs := testRegions()[3:]
	if _, err := (&Allocator{}).Choose(context.Background(), Policy{}, rs, Input{}); err != ErrNoRegion {
		t.Errorf("Choose without enabled regions = %v, want ErrNoRegion", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p     Policy
		field string
	}{
		{Policy{Policy: "fastest"}, "region.policy"},
		{Policy{Policy: PolicyStatic}, "region.region"},
		{Policy{Policy: PolicyGeo, Region: "eu"}, "region.region"},
		{Policy{Policy: PolicyHook}, "region.hook"},
		{Policy{Policy: PolicyHook, Hook: &AllocationHook{URL: "ftp://x"}}, "region.hook.url"},
		{Policy{Policy: PolicyHook, Hook: &AllocationHook{URL: "https://x", Timeout: "5m"}}, "region.hook.timeout"},
		{Policy{Policy: PolicyHook, Hook: &AllocationHook{URL: "https://x"}, Fallback: PolicyHook}, "region.fallback"},
		{Policy{Policy: PolicyGeo, Location: &Location{Lat: 91}}, "region.location"},
	} {
		err := tc.p.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%+v: %v, want an error on %s", tc.p, err, tc.field)
		}
	}
	p := Policy{}
	if err := p.Validate(); err != nil || p.Policy != PolicyLowestLatency || p.Fallback != PolicyLowestLatency {
		t.Errorf("defaults: %+v %v", p, err)
	}
}

func TestValidateRegion(t *testing.T) {
	good := func() Region {
		return Region{Name: "eu-west", ProvisionURL: "https://eu:9443", MQTTURL: "mqtts://eu:8883", ProbeURL: "https://eu:9443/v1/probe"}
	}
	g := good()
	if err := Validate(&g); err != nil || g.Status != store.RegionEnabled {
		t.Fatalf("Validate(good) = %v, status %q", err, g.Status)
	}
	for field, mut := range map[string]func(*Region){
		"name":         func(g *Region) { g.Name = "eu/west" },
		"provisionUrl": func(g *Region) { g.ProvisionURL = "http://eu:9443" },
		"mqttUrl":      func(g *Region) { g.MQTTURL = "mqtt://eu:1883" },
		"probeUrl":     func(g *Region) { g.ProbeURL = "" },
		"location":     func(g *Region) { g.Location = &Location{Lat: 0, Lon: 181} },
		"weight":       func(g *Region) { g.Weight = -1 },
		"status":       func(g *Region) { g.Status = "paused" },
	} {
		g := good()
		mut(&g)
		if err := Validate(&g); err == nil || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("%s: Validate = %v", field, err)
		}
	}
	if _, err := ParseLocation("48.85;2.35"); err == nil {
		t.Error("ParseLocation accepted a semicolon")
	}
	if l, err := ParseLocation(" 48.85, 2.35 "); err != nil || l.Lat != 48.85 || l.Lon != 2.35 {
		t.Errorf("ParseLocation = %+v, %v", l, err)
	}
}
