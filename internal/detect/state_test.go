package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// stateRules are the default rules plus a device rule with a duration, so
// the round trip covers open duration buckets too.
func stateRules(t testing.TB) []Rule {
	rules := DefaultRules()
	rules = append(rules, Rule{ID: "hourly-bytes", Kind: KindDevice, Metric: MetricBytesOut, Percentile: 95, Factor: 3, Min: 1,
		Duration: Duration(time.Hour), Severity: SeverityLow})
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return rules
}

// stateObservation is window k of a device: ordinary traffic with some
// noise, so no rule is firing when the engine stops (streaks are not
// kept), reports of two listening ports, firmware 2.0.
func stateObservation(r *rand.Rand, dev string, k int) Observation {
	o := Observation{DeviceID: dev, Cohort: "model-a", At: t0.Add(time.Duration(k) * 5 * time.Minute),
		Firmware: []Firmware{{"main", "2.0"}}}
	for _, m := range GatewayMetrics {
		v := 10 + r.Float64()*5
		if m == MetricSourceIPs {
			v = 1 // a clone's second address would be a breach
		}
		o.Values = append(o.Values, Value{m, v})
	}
	o.Values = append(o.Values, Value{MetricReportListening, 2}, Value{MetricReportDestinations, float64(3 + r.IntN(3))},
		Value{CustomPrefix + "temperature", 20 + r.Float64()})
	return o
}

// learnedEngine is an engine that has learned 5 devices of one cohort.
func learnedEngine(t testing.TB, learning int) *Engine {
	e := New(Config{LearningSamples: learning})
	e.SetRules(stateRules(t))
	r := rand.New(rand.NewPCG(7, 7))
	for k := range learning + 10 {
		for i := range 5 {
			o := stateObservation(r, fmt.Sprintf("dev-%d", i), k)
			e.Evaluate(&o, nil)
		}
	}
	return e
}

// TestStateRoundTrip: a fresh engine that imports a device's and its
// cohort's state judges the next observations exactly as the engine that
// learned them, and is not learning.
func TestStateRoundTrip(t *testing.T) {
	const learning = 20
	old := learnedEngine(t, learning)
	fresh := New(Config{LearningSamples: learning})
	fresh.SetRules(stateRules(t))

	if _, _, ok := fresh.DeviceBaselines("dev-0"); ok {
		t.Fatalf("a fresh engine knows dev-0 already")
	}
	ds, ok := old.ExportDevice("dev-0")
	if !ok {
		t.Fatal("dev-0 not exported")
	}
	cs, ok := old.ExportCohort("model-a")
	if !ok {
		t.Fatal("model-a not exported")
	}
	t.Logf("device state %d bytes, cohort state %d bytes", len(ds), len(cs))
	if imported, err := fresh.ImportDevice("dev-0", ds); err != nil || !imported {
		t.Fatalf("ImportDevice = %v, %v", imported, err)
	}
	if imported, err := fresh.ImportCohort("model-a", cs); err != nil || !imported {
		t.Fatalf("ImportCohort = %v, %v", imported, err)
	}
	if got := fresh.Cohorts(); !reflect.DeepEqual(got, []string{"model-a"}) {
		t.Fatalf("Cohorts = %v", got)
	}

	wantBs, wantLearning, _ := old.DeviceBaselines("dev-0")
	gotBs, gotLearning, ok := fresh.DeviceBaselines("dev-0")
	if !ok || gotLearning || wantLearning || !reflect.DeepEqual(gotBs, wantBs) {
		t.Fatalf("restored baselines = %+v learning=%v, want %+v learning=%v", gotBs, gotLearning, wantBs, wantLearning)
	}
	if got, want := fresh.CohortBaselines("model-a"), old.CohortBaselines("model-a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored cohort baselines = %+v, want %+v", got, want)
	}

	// The next observations: an attack on every front the state serves
	// (device percentile, fleet percentile, firmware downgrade, anomaly
	// score, open hour bucket), then ordinary traffic.
	r := rand.New(rand.NewPCG(9, 9))
	fired := 0
	for k := range 6 {
		o := stateObservation(r, "dev-0", learning+10+k)
		if k < 3 {
			o.Firmware = []Firmware{{"main", "1.0"}}
			for i := range o.Values {
				o.Values[i].Value *= 100
			}
			o.Values[1].Value = 500 // connects: reconnect storm
		}
		want := old.Evaluate(&o, nil)
		got := fresh.Evaluate(&o, nil)
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		if string(g) != string(w) {
			t.Fatalf("observation %d: restored engine found\n%s\nthe learning engine\n%s", k, g, w)
		}
		fired += len(got)
		if k == 0 {
			for _, id := range []string{"new-listening-port", "reconnect-storm", "firmware-downgrade"} {
				if !hasRule(got, id) {
					t.Errorf("first attack window: %s did not fire: %s", id, g)
				}
			}
		}
	}
	if fired == 0 {
		t.Fatal("nothing fired: the comparison proves nothing")
	}
	a, _ := old.ExportDevice("dev-0")
	b, _ := fresh.ExportDevice("dev-0")
	ad, _ := decodeDevice(a)
	bd, _ := decodeDevice(b)
	if !reflect.DeepEqual(ad.metrics, bd.metrics) || !reflect.DeepEqual(ad.rules, bd.rules) || !reflect.DeepEqual(ad.firmware, bd.firmware) {
		t.Fatal("the engines' states diverged after the same observations")
	}
}

func hasRule(fs []Finding, id string) bool {
	for _, f := range fs {
		if f.RuleID == id {
			return true
		}
	}
	return false
}

// TestImportKeepsLearnedState: a device that has learned in this engine
// keeps its state; one still learning takes the imported state and keeps
// the higher firmware version it saw meanwhile.
func TestImportKeepsLearnedState(t *testing.T) {
	old := learnedEngine(t, 10)
	ds, _ := old.ExportDevice("dev-1")
	if imported, err := old.ImportDevice("dev-1", ds); err != nil || imported {
		t.Fatalf("import over a learned device = %v, %v; want kept", imported, err)
	}
	cs, _ := old.ExportCohort("model-a")
	if imported, err := old.ImportCohort("model-a", cs); err != nil || imported {
		t.Fatalf("import over a learning cohort = %v, %v; want kept", imported, err)
	}

	e := New(Config{LearningSamples: 10})
	e.SetRules(stateRules(t))
	o := Observation{DeviceID: "dev-1", At: t0, Values: []Value{{MetricBytesIn, 1}}, Firmware: []Firmware{{"main", "3.0"}, {"radio", "1.1"}}}
	e.Evaluate(&o, nil)
	if imported, err := e.ImportDevice("dev-1", ds); err != nil || !imported {
		t.Fatalf("import over a learning device = %v, %v", imported, err)
	}
	if _, learning, _ := e.DeviceBaselines("dev-1"); learning {
		t.Fatal("still learning after the import")
	}
	// 2.5 is below the 3.0 seen here before the import.
	o = Observation{DeviceID: "dev-1", At: t0.Add(time.Hour), Firmware: []Firmware{{"main", "2.5"}}}
	if fs := e.Evaluate(&o, nil); !hasRule(fs, "firmware-downgrade") {
		t.Fatalf("findings %+v, want a downgrade from 3.0", fs)
	}
}

// TestImportRefusesBadState: truncated, altered, unknown-version and
// wrong-kind states are refused with an error, never a panic, and leave
// the engine as it was.
func TestImportRefusesBadState(t *testing.T) {
	old := learnedEngine(t, 10)
	ds, _ := old.ExportDevice("dev-2")
	cs, _ := old.ExportCohort("model-a")
	e := New(Config{LearningSamples: 10})
	e.SetRules(stateRules(t))

	bad := map[string][]byte{
		"empty":        nil,
		"version only": {StateVersion},
		"trailing":     append(append([]byte{}, ds...), 0),
		"cohort kind":  cs,
		"huge count":   {StateVersion, stateDevice, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad name":     {StateVersion, stateDevice, 1, 200},
	}
	for n := 2; n < len(ds); n += 7 {
		bad[fmt.Sprintf("truncated to %d", n)] = ds[:n]
	}
	for name, b := range bad {
		if imported, err := e.ImportDevice("x", b); err == nil || imported || !errors.Is(err, ErrStateCorrupt) {
			t.Errorf("%s: ImportDevice = %v, %v; want ErrStateCorrupt", name, imported, err)
		}
	}
	v2 := append([]byte{StateVersion + 1}, ds[1:]...)
	if _, err := e.ImportDevice("x", v2); !errors.Is(err, ErrStateVersion) {
		t.Errorf("unknown version: %v, want ErrStateVersion", err)
	}
	if _, err := e.ImportCohort("model-a", append([]byte{0}, cs[1:]...)); !errors.Is(err, ErrStateVersion) {
		t.Errorf("unknown cohort version: %v, want ErrStateVersion", err)
	}
	if _, err := e.ImportCohort("model-a", ds); !errors.Is(err, ErrStateCorrupt) {
		t.Errorf("device state as cohort: %v, want ErrStateCorrupt", err)
	}
	// Random damage must never panic; whatever decodes is a valid state.
	r := rand.New(rand.NewPCG(3, 3))
	for range 2000 {
		b := append([]byte{}, ds...)
		for range 1 + r.IntN(4) {
			b[2+r.IntN(len(b)-2)] = byte(r.UintN(256))
		}
		_, _ = e.ImportDevice("fuzz", b)
		o := Observation{DeviceID: "fuzz", At: t0, Values: []Value{{MetricReportListening, 9}, {MetricBytesIn, 3}}}
		e.Evaluate(&o, nil)
		e.ExportDevice("fuzz")
	}
	if _, _, ok := e.DeviceBaselines("x"); ok {
		t.Fatal("a refused state left a device behind")
	}
	if len(e.Cohorts()) != 0 {
		t.Fatal("a refused cohort state left a cohort behind")
	}
}

// FuzzImportDevice: no input panics the decoder or the evaluation after it.
func FuzzImportDevice(f *testing.F) {
	old := learnedEngine(f, 10)
	ds, _ := old.ExportDevice("dev-0")
	f.Add(ds)
	f.Fuzz(func(t *testing.T, b []byte) {
		e := New(Config{LearningSamples: 10})
		e.SetRules(stateRules(t))
		if _, err := e.ImportDevice("d", b); err != nil {
			return
		}
		o := Observation{DeviceID: "d", At: t0, Values: []Value{{MetricReportListening, 9}, {MetricBytesOut, 3}}}
		e.Evaluate(&o, nil)
	})
}

// TestExportChanged: only devices observed since the last export are
// exported, and a failed write flags them again.
func TestExportChanged(t *testing.T) {
	e := learnedEngine(t, 10)
	collect := func() map[string]int {
		got := map[string]int{}
		if err := e.ExportChanged(func(batch []DeviceState) error {
			for _, s := range batch {
				if _, err := decodeDevice(s.State); err != nil {
					t.Fatalf("%s: %v", s.ID, err)
				}
				got[s.ID] = len(s.State)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := collect(); len(got) != 5 {
		t.Fatalf("first export: %v, want all 5 devices", got)
	}
	if got := collect(); len(got) != 0 {
		t.Fatalf("second export: %v, want none", got)
	}
	o := Observation{DeviceID: "dev-3", At: t0.Add(24 * time.Hour), Values: []Value{{MetricBytesIn, 3}}}
	e.Evaluate(&o, nil)
	failed := errors.New("database down")
	if err := e.ExportChanged(func([]DeviceState) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("ExportChanged = %v, want the write's error", err)
	}
	if got := collect(); len(got) != 1 || got["dev-3"] == 0 {
		t.Fatalf("after a failed write: %v, want dev-3 again", got)
	}
}
