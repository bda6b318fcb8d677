package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

func TestParseReportDomains(t *testing.T) {
	now := time.Now()
	// Reports without the field stay valid and carry no domains at all.
	r, err := ParseReport([]byte(`{"version":1,"destinationIps":["10.0.0.9"]}`), now)
	if err != nil || r.Domains != nil {
		t.Fatalf("report without domains: %+v, %v", r, err)
	}
	r, err = ParseReport([]byte(`{"version":1,"domains":[]}`), now)
	if err != nil || r.Domains == nil || len(r.Domains) != 0 {
		t.Fatalf("empty domains: %+v, %v; want an empty, non-nil list", r, err)
	}
	// Names are normalised to lower case without a trailing dot.
	r, err = ParseReport([]byte(`{"version":1,"domains":["Time.Example.NET.","c2.example","xn--bcher-kva.example"]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"time.example.net", "c2.example", "xn--bcher-kva.example"}; !slices.Equal(r.Domains, want) {
		t.Fatalf("domains = %q, want %q", r.Domains, want)
	}
	names := make([]string, maxDomains)
	for i := range names {
		names[i] = fmt.Sprintf("h%d.example.com", i)
	}
	if _, err := ParseReport(reportWithDomains(t, names), now); err != nil {
		t.Fatalf("%d domains refused: %v", maxDomains, err)
	}

	long := strings.Repeat("a", 300) + ".example.com"
	for _, c := range []struct {
		names []string
		want  string
	}{
		{append(names, "one-too-many.example.com"), fmt.Sprintf("at most %d domains, got %d", maxDomains, maxDomains+1)},
		{[]string{"ok.example.com", "localhost"}, `domains[1]: "localhost" is not a domain name: not a fully qualified name`},
		{[]string{""}, `domains[0]: "" is not a domain name: empty name`},
		{[]string{"192.0.2.1"}, `domains[0]: "192.0.2.1" is not a domain name: top-level label "1"`},
		{[]string{"_mqtt._tcp.example.com"}, `domains[0]: "_mqtt._tcp.example.com" is not a domain name: label "_mqtt"`},
		{[]string{"a..example.com"}, "empty label"},
		{[]string{"bücher.example"}, "not ASCII"},
		{[]string{"x.example.com\n"}, "is not a domain name"},
		{[]string{long}, "at most 253 allowed"},
	} {
		_, err := ParseReport(reportWithDomains(t, c.names), now)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("domains %.60q: err %v, want %q", c.names, err, c.want)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("rejection reason is %d characters: it echoes too much of the name", len(err.Error()))
		}
	}
	if _, err := ParseReport([]byte(`{"version":1,"domains":"c2.example"}`), now); err == nil {
		t.Error("a string instead of a list was accepted")
	}
	if _, err := ParseReport([]byte(`{"version":1,"domains":[7]}`), now); err == nil {
		t.Error("a number instead of a name was accepted")
	}
}

func reportWithDomains(t *testing.T, names []string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"version": 1, "domains": names})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reportLog is an Observer that keeps the reports it receives.
type reportLog struct {
	mu      sync.Mutex
	reports []*Report
}

func (l *reportLog) ObserveWindow(store.MeterWindow) {}

func (l *reportLog) ObserveReport(_ string, _ time.Time, r *Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, r)
}

func (l *reportLog) all() []*Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reports)
}

// TestReportDomainsOverMQTT: over a real session, a report with a bad name
// is answered on the rejected topic and neither delivered nor observed; a
// good one reaches the observer normalised.
func TestReportDomainsOverMQTT(t *testing.T) {
	obs := &reportLog{}
	h := newHarness(t, func(c *Config) { c.Observer = obs })
	d, cred := h.device(fleet.StateActive)
	c := h.mustConnect(cred.TLS(), d.ID)
	var mu sync.Mutex
	var rejections []string
	c.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		rejections = append(rejections, pr.Packet.Topic+" "+string(pr.Packet.Payload))
		return true, nil
	})
	topic := "devices/" + d.ID + "/metrics"
	if !h.subscribe(c, topic+"/rejected") {
		t.Fatal("device may not hear about its rejected reports")
	}
	publish := func(payload string) (acked bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
		return err == nil
	}
	if publish(`{"version":1,"destinationIps":["10.0.0.9"],"domains":["c2.example","bad_name.example"]}`) {
		t.Fatal("a report with a bad domain name was accepted")
	}
	eventually(t, "rejection answered", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rejections) == 1
	})
	if want := `domains[1]: \"bad_name.example\" is not a domain name`; !strings.Contains(rejections[0], want) {
		t.Fatalf("rejection = %s, want mention of %s", rejections[0], want)
	}
	h.mu.Lock()
	delivered := h.seen[topic]
	h.mu.Unlock()
	if delivered != 0 || len(obs.all()) != 0 {
		t.Fatalf("a rejected report was delivered %d times and observed %d times", delivered, len(obs.all()))
	}

	if !publish(`{"version":1,"domains":["Beacon.C2.Example."]}`) {
		t.Fatal("a good report with domains was refused")
	}
	eventually(t, "report observed", 10*time.Second, func() bool { return len(obs.all()) == 1 })
	if got := obs.all()[0].Domains; !slices.Equal(got, []string{"beacon.c2.example"}) {
		t.Fatalf("observed domains = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejections) != 1 {
		t.Fatalf("rejections = %q, want only the bad report's", rejections)
	}
}
