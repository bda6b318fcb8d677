package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func mustRule(t *testing.T, r Rule) Rule {
	t.Helper()
	if err := r.Validate(); err != nil {
		t.Fatalf("rule %s: %v", r.ID, err)
	}
	return r
}

// feed evaluates one datapoint of metric per step and returns the steps
// at which a finding was reported.
func feed(e *Engine, dev, metric string, values []float64) []int {
	var fired []int
	for i, v := range values {
		o := Observation{DeviceID: dev, Cohort: "m", At: t0.Add(time.Duration(i) * 5 * time.Minute), Values: []Value{{metric, v}}}
		if fs := e.Evaluate(&o, nil); len(fs) > 0 {
			fired = append(fired, i)
		}
	}
	return fired
}

func TestStaticRuleConsecutiveAndNoFlapping(t *testing.T) {
	e := New(Config{LearningSamples: 10})
	e.SetRules([]Rule{mustRule(t, Rule{ID: "af", Kind: KindStatic, Metric: MetricAuthFailures, Value: 5, Consecutive: 2, Severity: SeverityHigh})})
	// One breach alone never fires; two in a row fire once; the streak
	// continuing does not fire again; after a clear datapoint it may.
	got := feed(e, "d1", MetricAuthFailures, []float64{9, 0, 9, 9, 9, 9, 0, 9, 9})
	if want := []int{3, 8}; !slices.Equal(got, want) {
		t.Fatalf("fired at %v, want %v", got, want)
	}
}

func TestDeviceRuleLearnsEachDevice(t *testing.T) {
	e := New(Config{LearningSamples: 50})
	e.SetRules([]Rule{mustRule(t, Rule{ID: "out", Kind: KindDevice, Metric: MetricBytesOut, Percentile: 99, Factor: 3, Severity: SeverityHigh})})
	r := rand.New(rand.NewPCG(1, 2))
	quiet, busy := make([]float64, 100), make([]float64, 100)
	for i := range quiet {
		quiet[i] = 100 + r.Float64()*20
		busy[i] = 10000 + r.Float64()*2000
	}
	// 5000 would be normal for nobody: it is huge for the quiet device and
	// low for the busy one. During learning, nothing fires at all.
	quiet[20], busy[20] = 5000, 5000
	quiet[80], busy[80] = 5000, 5000
	if got := feed(e, "quiet", MetricBytesOut, quiet); !slices.Equal(got, []int{80}) {
		t.Errorf("quiet device fired at %v, want only 80 (20 is during learning)", got)
	}
	if got := feed(e, "busy", MetricBytesOut, busy); len(got) != 0 {
		t.Errorf("busy device fired at %v, want never", got)
	}
	bs, learning, ok := e.DeviceBaselines("quiet")
	if !ok || learning || len(bs) != 1 || bs[0].Samples < 99 || math.Abs(bs[0].Mean-110) > 15 {
		t.Errorf("baselines = %+v learning=%v ok=%v", bs, learning, ok)
	}
	if _, learning, ok := e.DeviceBaselines("never-seen"); ok || !learning {
		t.Errorf("unknown device: ok=%v learning=%v", ok, learning)
	}
}

func TestFleetRuleAndMinimum(t *testing.T) {
	e := New(Config{LearningSamples: 20})
	e.SetRules([]Rule{mustRule(t, Rule{ID: "conn", Kind: KindFleet, Metric: MetricConnects, Percentile: 99.9, Factor: 2, Min: 5, Severity: SeverityMedium})})
	for i := 0; i < 40; i++ {
		feed(e, "d"+string(rune('a'+i%20)), MetricConnects, []float64{1})
	}
	// The cohort's p99.9 is 1, twice that is 2, but the minimum is 5.
	if got := feed(e, "x", MetricConnects, []float64{4, 6}); !slices.Equal(got, []int{1}) {
		t.Fatalf("fired at %v, want [1]", got)
	}
}

func TestDurationSumsDatapoints(t *testing.T) {
	e := New(Config{LearningSamples: 5})
	e.SetRules([]Rule{mustRule(t, Rule{ID: "sum", Kind: KindStatic, Metric: MetricMessagesIn, Value: 10, Duration: Duration(15 * time.Minute), Severity: SeverityLow})})
	// Windows of 5 minutes: 4+4+4 = 12 in the first quarter hour, judged
	// when the next quarter's first datapoint arrives.
	if got := feed(e, "d", MetricMessagesIn, []float64{4, 4, 4, 1, 1, 1, 0}); !slices.Equal(got, []int{3}) {
		t.Fatalf("fired at %v, want [3]", got)
	}
}

func TestAnomalyScoreAndFirmwareAndIntel(t *testing.T) {
	e := New(Config{LearningSamples: 30, Intel: fakeIntel{netip.MustParseAddr("203.0.113.9")}})
	e.SetRules([]Rule{
		mustRule(t, Rule{ID: "anom", Kind: KindAnomaly, Value: 8, Severity: SeverityLow}),
		mustRule(t, Rule{ID: "fw", Kind: KindFirmware, Severity: SeverityHigh, Actions: []Action{ActionQuarantine}, Auto: true}),
		mustRule(t, Rule{ID: "ti", Kind: KindIntel, Severity: SeverityCritical}),
	})
	r := rand.New(rand.NewPCG(3, 4))
	obs := func(i int, a, b float64) Observation {
		return Observation{DeviceID: "d", At: t0.Add(time.Duration(i) * time.Minute), Values: []Value{{MetricMessagesIn, a}, {MetricBytesIn, b}}}
	}
	for i := 0; i < 60; i++ {
		o := obs(i, 50+r.NormFloat64()*5, 5000+r.NormFloat64()*500)
		if fs := e.Evaluate(&o, nil); len(fs) > 0 {
			t.Fatalf("normal datapoint %d fired %+v", i, fs)
		}
	}
	o := obs(60, 400, 90000)
	fs := e.Evaluate(&o, nil)
	if len(fs) != 1 || fs[0].RuleID != "anom" || fs[0].Evidence.Score < 8 || len(fs[0].Evidence.Contributors) != 2 {
		t.Fatalf("anomaly findings = %+v", fs)
	}
	fw := func(v string) []Finding {
		o := Observation{DeviceID: "d", At: t0, Firmware: []Firmware{{"main", v}}}
		return e.Evaluate(&o, nil)
	}
	if len(fw("2.3.1")) != 0 || len(fw("2.10.0")) != 0 {
		t.Fatal("an upgrade fired")
	}
	if fs := fw("2.9.9"); len(fs) != 1 || fs[0].Evidence.From != "2.10.0" || fs[0].Evidence.To != "2.9.9" || !fs[0].Auto {
		t.Fatalf("downgrade findings = %+v", fs)
	}
	o = Observation{DeviceID: "d", At: t0, Addresses: []Address{{netip.MustParseAddr("192.0.2.1"), DirectionDestination}, {netip.MustParseAddr("203.0.113.9"), DirectionDestination}}}
	if fs := e.Evaluate(&o, nil); len(fs) != 1 || fs[0].Evidence.Address != "203.0.113.9" || fs[0].Severity != SeverityCritical {
		t.Fatalf("intel findings = %+v", fs)
	}
}

type fakeIntel struct{ bad netip.Addr }

func (f fakeIntel) MatchIP(ip netip.Addr) (IntelMatch, bool) {
	return IntelMatch{Feed: "test", Indicator: f.bad.String(), Type: "ip"}, ip == f.bad
}

func TestReplacingRulesKeepsBaselines(t *testing.T) {
	e := New(Config{LearningSamples: 10})
	r := mustRule(t, Rule{ID: "b", Kind: KindDevice, Metric: MetricBytesIn, Percentile: 99, Factor: 2, Severity: SeverityLow})
	e.SetRules([]Rule{r})
	feed(e, "d", MetricBytesIn, slices.Repeat([]float64{100}, 20))
	// Same statistic, new severity: the baseline carries over and the
	// rule judges at once.
	r.Severity = SeverityHigh
	e.SetRules([]Rule{r})
	if got := feed(e, "d", MetricBytesIn, []float64{1000}); len(got) != 1 {
		t.Fatal("rule lost its baseline when only its severity changed")
	}
	// A new percentile is a new statistic: learning starts over.
	r.Percentile = 95
	e.SetRules([]Rule{r})
	if got := feed(e, "d", MetricBytesIn, []float64{1000}); len(got) != 0 {
		t.Fatal("rule with a new percentile judged without learning")
	}
}

func TestRuleValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		r    Rule
		want string
	}{
		"bad id":          {Rule{ID: "a b", Kind: KindStatic, Metric: MetricConnects, Severity: SeverityLow}, "id"},
		"unknown kind":    {Rule{ID: "a", Kind: "magic", Severity: SeverityLow}, "kind"},
		"unknown metric":  {Rule{ID: "a", Kind: KindStatic, Metric: "cpu", Severity: SeverityLow}, "metric"},
		"bad percentile":  {Rule{ID: "a", Kind: KindDevice, Metric: MetricConnects, Percentile: 98, Severity: SeverityLow}, "percentile"},
		"bad severity":    {Rule{ID: "a", Kind: KindStatic, Metric: MetricConnects, Severity: "urgent"}, "severity"},
		"bad op":          {Rule{ID: "a", Kind: KindStatic, Metric: MetricConnects, Op: "!=", Severity: SeverityLow}, "op"},
		"bad action":      {Rule{ID: "a", Kind: KindIntel, Severity: SeverityLow, Actions: []Action{"reboot"}}, "action"},
		"bad group":       {Rule{ID: "a", Kind: KindIntel, Severity: SeverityLow, Actions: []Action{"group:a/b"}}, "group"},
		"auto no actions": {Rule{ID: "a", Kind: KindIntel, Severity: SeverityLow, Auto: true}, "auto"},
		"anomaly score":   {Rule{ID: "a", Kind: KindAnomaly, Severity: SeverityLow}, "score"},
		"intel metric":    {Rule{ID: "a", Kind: KindIntel, Metric: MetricConnects, Severity: SeverityLow}, "takes no metric"},
		"consecutive":     {Rule{ID: "a", Kind: KindStatic, Metric: MetricConnects, Consecutive: -1, Severity: SeverityLow}, "consecutive"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.r.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error about %q", err, tc.want)
			}
		})
	}
	ok := Rule{ID: "ok", Kind: KindStatic, Metric: CustomPrefix + "cpu.load", Value: 0.9, Severity: SeverityLow, Actions: []Action{"group:watch"}}
	if err := ok.Validate(); err != nil || ok.Op != OpGreater || ok.Consecutive != 1 || ok.Factor != 1 {
		t.Fatalf("Validate = %v, defaults %+v", err, ok)
	}
}

func TestQuantileEstimates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, p := range []float64{0.5, 0.9, 0.99} {
		q := newQuantile(p)
		for i := 0; i < 20000; i++ {
			q.add(r.Float64() * 1000)
		}
		if got := q.value(); math.Abs(got-p*1000) > 15 {
			t.Errorf("p%v of uniform 0..1000 = %v", p*100, got)
		}
	}
	q := newQuantile(0.5)
	for _, v := range []float64{5, 1, 3} {
		q.add(v)
	}
	if q.value() != 3 {
		t.Errorf("median of 1,3,5 = %v", q.value())
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.3", 1}, {"v2.0", "2.0", 0}, {"1.2", "1.2.1", -1}, {"1.2.0-rc1", "1.2.0-rc2", -1}, {"2.3.1", "1.9.0", 1},
	} {
		if got := compareVersions(c.a, c.b); (got > 0) != (c.want > 0) || (got < 0) != (c.want < 0) {
			t.Errorf("compareVersions(%s, %s) = %d, want sign %d", c.a, c.b, got, c.want)
		}
	}
}

func TestCohortBaselines(t *testing.T) {
	e := New(Config{LearningSamples: 10})
	// Devices of one model spread over the shards; each sends its own
	// constant (0 or 100), so the model's mean is near 50 and its
	// spread near 50 (EWMA weights recent datapoints a little more).
	for k := 0; k < 20; k++ {
		for i := 0; i < 100; i++ {
			o := Observation{DeviceID: fmt.Sprintf("d%03d", i), Cohort: "m1", At: t0.Add(time.Duration(k) * time.Minute), Values: []Value{{MetricBytesIn, float64(i % 2 * 100)}}}
			e.Evaluate(&o, nil)
		}
	}
	o := Observation{DeviceID: "other", Cohort: "m2", At: t0, Values: []Value{{MetricBytesIn, 5}}}
	e.Evaluate(&o, nil)
	bs := e.CohortBaselines("m1")
	if len(bs) != 1 || bs[0].Samples != 2000 || math.Abs(bs[0].Mean-50) > 5 || math.Abs(bs[0].StdDev-50) > 5 {
		t.Fatalf("m1 baselines = %+v", bs)
	}
	if bs := e.CohortBaselines("m2"); len(bs) != 1 || bs[0].Mean != 5 {
		t.Fatalf("m2 baselines = %+v", bs)
	}
	if bs := e.CohortBaselines("nope"); len(bs) != 0 {
		t.Fatalf("unknown cohort = %+v", bs)
	}
}
