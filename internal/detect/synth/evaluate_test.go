package synth

import (
	"testing"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/intel"
)

// engineWithDefaults is the engine a new installation runs: the default
// rules and the C2 feed loaded as intelligence.
func engineWithDefaults(t testing.TB) *detect.Engine {
	t.Helper()
	p, err := intel.Parse([]byte(C2Feed()), intel.FormatAuto, testStart)
	if err != nil {
		t.Fatal(err)
	}
	m := intel.NewMatcher()
	m.Load([]intel.Feed{{Name: "c2", Indicators: p.Indicators}})
	e := detect.New(detect.Config{Intel: m})
	rules := detect.DefaultRules()
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			t.Fatalf("default rule %s: %v", rules[i].ID, err)
		}
	}
	e.SetRules(rules)
	return e
}

var testStart = (&Fleet{}).start()

// TestLabelledFleet is the detection evaluation: a seeded fleet of normal
// and attacked devices, judged by the default rules. It asserts the goals
// of the detection feature: at least 95% of attacks detected (and each
// scenario detected), at most 1% of normal devices falsely flagged per day.
func TestLabelledFleet(t *testing.T) {
	f := &Fleet{Seed: 42, Normal: 400, PerAttack: 20, LearnDays: 1, EvalDays: 2}
	if testing.Short() {
		f.Normal, f.PerAttack = 150, 8
	}
	res := f.Evaluate(engineWithDefaults(t))
	t.Logf("\n%s", res.Table())
	if res.DetectionRate < 0.95 {
		t.Errorf("detection rate %.3f, want at least 0.95", res.DetectionRate)
	}
	for _, a := range res.Attacks {
		if a.Rate < 0.9 {
			t.Errorf("%s: detected %d of %d", a.Scenario, a.Detected, a.Devices)
		}
	}
	if res.FalsePositiveRate > 0.01 {
		t.Errorf("false-positive rate %.4f per device-day, want at most 0.01 (rules %v)", res.FalsePositiveRate, res.FalseRules)
	}
}

// TestLabelledFleetDeterministic: the same seed gives the same fleet and
// the same verdicts, so the evaluation's numbers are reproducible.
func TestLabelledFleetDeterministic(t *testing.T) {
	f := Fleet{Seed: 7, Normal: 30, PerAttack: 2, LearnDays: 1, EvalDays: 2}
	a, b := f.Evaluate(engineWithDefaults(t)), f.Evaluate(engineWithDefaults(t))
	if a.Table() != b.Table() {
		t.Fatalf("two runs differ:\n%s\n%s", a.Table(), b.Table())
	}
}
