package synth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/intel"
)

// TestBeaconingReportsC2Name: a beaconing device's report, as `muster sim
// fleet --attacks c2` publishes it, is valid and names a C2 server that
// the feed's domain indicator alone catches.
func TestBeaconingReportsC2Name(t *testing.T) {
	p, err := intel.Parse([]byte(C2Feed()), intel.FormatAuto, testStart)
	if err != nil {
		t.Fatal(err)
	}
	var domains []intel.Indicator
	for _, ind := range p.Indicators {
		if ind.Type == intel.TypeDomain {
			domains = append(domains, ind)
		}
	}
	if len(domains) != 1 || domains[0].Value != C2Domain {
		t.Fatalf("feed domain indicators = %+v, want %s", domains, C2Domain)
	}
	m := intel.NewMatcher()
	m.Load([]intel.Feed{{Name: "c2", Indicators: domains}})
	e := detect.New(detect.Config{Intel: m})
	rule := detect.Rule{ID: "intel-match", Kind: detect.KindIntel, Severity: detect.SeverityCritical}
	if err := rule.Validate(); err != nil {
		t.Fatal(err)
	}
	e.SetRules([]detect.Rule{rule})

	d := NewDevice("dev", "m", 1)
	d.Attack, d.AttackAt = Beaconing, testStart.Add(time.Hour)
	before := d.Tick(testStart, 5*time.Minute)
	if before.Report.Domains != nil {
		t.Fatalf("before the attack the device reports names %q", before.Report.Domains)
	}
	tk := d.Tick(d.AttackAt, 5*time.Minute)
	b, err := json.Marshal(tk.Report)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := gateway.ParseReport(b, d.AttackAt.Add(5*time.Minute))
	if err != nil {
		t.Fatalf("the gateway refuses the beaconing report: %v", err)
	}
	o := detect.NewReports().Observation(d.ID, d.Model, d.AttackAt.Add(5*time.Minute), rep)
	fs := e.Evaluate(&o, nil)
	if len(fs) != 1 || fs[0].Evidence.Domain == "" || fs[0].Evidence.Indicator == nil || fs[0].Evidence.Indicator.Indicator != C2Domain {
		t.Fatalf("findings = %+v, want one domain match", fs)
	}
}
