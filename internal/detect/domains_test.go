package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/gateway"
)

// MatchDomain completes fakeIntel (engine_test.go), which lists no domain.
func (fakeIntel) MatchDomain(string) (IntelMatch, bool) { return IntelMatch{}, false }

// domainIntel lists domain indicators of one feed and matches like
// intel.Matcher: the name itself or any parent domain.
type domainIntel []string

func (domainIntel) MatchIP(netip.Addr) (IntelMatch, bool) { return IntelMatch{}, false }

func (d domainIntel) MatchDomain(name string) (IntelMatch, bool) {
	for _, ind := range d {
		if name == ind || strings.HasSuffix(name, "."+ind) {
			return IntelMatch{Feed: "c2", Indicator: ind, Type: "domain"}, true
		}
	}
	return IntelMatch{}, false
}

func TestReportDomainsBecomeObservation(t *testing.T) {
	rs := NewReports()
	// A report without the field has no domains and no report.domains
	// datapoint: devices that never report names learn no zero baseline.
	o := rs.Observation("d", "m", t0, &gateway.Report{Version: 1, DestinationIPs: []string{"192.0.2.1"}})
	if len(o.Domains) != 0 || hasMetric(o, MetricReportDomains) {
		t.Fatalf("report without domains: %+v", o)
	}
	// An empty list is a device saying it resolved nothing: zero.
	o = rs.Observation("d", "m", t0, &gateway.Report{Version: 1, Domains: []string{}})
	if v, ok := metricValue(o, MetricReportDomains); !ok || v != 0 {
		t.Fatalf("empty domains: report.domains = %v, %v; want 0", v, ok)
	}
	o = rs.Observation("d", "m", t0, &gateway.Report{Version: 1, Domains: []string{"a.example.com", "b.example.com", "a.example.com"}})
	if len(o.Domains) != 2 || o.Domains[0] != "a.example.com" || o.Domains[1] != "b.example.com" {
		t.Fatalf("domains = %v, want each name once in report order", o.Domains)
	}
	if v, _ := metricValue(o, MetricReportDomains); v != 2 {
		t.Fatalf("report.domains = %v, want 2 distinct", v)
	}
	if !validMetric(MetricReportDomains) {
		t.Fatal("rules may not name report.domains")
	}
}

func TestDomainIntelMatch(t *testing.T) {
	e := New(Config{LearningSamples: 5, Intel: domainIntel{"c2.example"}})
	e.SetRules([]Rule{mustRule(t, Rule{ID: "ti", Kind: KindIntel, Severity: SeverityCritical, Actions: []Action{ActionQuarantine}, Auto: true})})
	rs := NewReports()
	eval := func(i int, r *gateway.Report) []Finding {
		o := rs.Observation("dev", "m", t0.Add(time.Duration(i)*time.Minute), r)
		return e.Evaluate(&o, nil)
	}
	// Unrelated names, including ones that merely end in the indicator's
	// text or contain it, match nothing.
	if fs := eval(0, &gateway.Report{Version: 1, Domains: []string{"example", "notc2.example", "c2.example.org", "c2.examples"}}); len(fs) != 0 {
		t.Fatalf("unrelated domains fired %+v", fs)
	}
	// A report with no address at all, only a name under the indicated
	// domain, raises the intelligence finding with its evidence.
	fs := eval(1, &gateway.Report{Version: 1, Domains: []string{"time.example.net", "beacon.eu.c2.example"}})
	if len(fs) != 1 {
		t.Fatalf("findings = %+v, want one", fs)
	}
	f := fs[0]
	ev := f.Evidence
	if f.RuleID != "ti" || f.Kind != KindIntel || f.Severity != SeverityCritical || !f.Auto || f.DeviceID != "dev" ||
		ev.Domain != "beacon.eu.c2.example" || ev.Address != "" || ev.Direction != DirectionDestination ||
		ev.Indicator == nil || ev.Indicator.Feed != "c2" || ev.Indicator.Indicator != "c2.example" || ev.Indicator.Type != "domain" {
		t.Fatalf("finding = %+v, evidence indicator %+v", f, ev.Indicator)
	}
	// The indicated domain itself matches too.
	if fs := eval(2, &gateway.Report{Version: 1, Domains: []string{"c2.example"}}); len(fs) != 1 || fs[0].Evidence.Domain != "c2.example" {
		t.Fatalf("findings for the indicated domain = %+v", fs)
	}
	// Without an intel rule in force, names are not matched.
	e.SetRules(nil)
	if fs := eval(3, &gateway.Report{Version: 1, Domains: []string{"c2.example"}}); len(fs) != 0 {
		t.Fatalf("no intel rule, findings = %+v", fs)
	}
}

func metricValue(o Observation, metric string) (float64, bool) {
	for _, v := range o.Values {
		if v.Metric == metric {
			return v.Value, true
		}
	}
	return 0, false
}

func hasMetric(o Observation, metric string) bool {
	_, ok := metricValue(o, metric)
	return ok
}
