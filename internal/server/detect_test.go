package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
)

// TestDetectionWiring: the node installs the default rules once, skips a
// stored rule that does not validate, reloads intelligence when a feed
// changes, and turns an observed report into an alert.
func TestDetectionWiring(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "m.db"), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	d, err := newDetection(ctx, st, nil, DetectConfig{LearningSamples: 3}, "n1", log)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(d.engine.Rules()), len(detect.DefaultRules()); got != want {
		t.Fatalf("rules in force = %d, want the %d defaults", got, want)
	}
	// A rule stored behind the API's back that does not validate is
	// skipped; the others stay in force.
	if err := st.SaveDetectRules(ctx, []store.DetectRule{{ID: "broken", Doc: json.RawMessage(`{"id":"broken","kind":"static","metric":"nope","severity":"high"}`)}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range d.engine.Rules() {
		if r.ID == "broken" {
			t.Fatal("an invalid rule is in force")
		}
	}
	// A second node start installs nothing again.
	if seeded, err := st.SeedDetectRules(ctx, nil, "muster"); err != nil || seeded {
		t.Fatalf("seeded again: %v %v", seeded, err)
	}

	if _, err := st.ReplaceIntelFeed(ctx, store.IntelFeed{Name: "c2", Format: "list"},
		[]store.IntelIndicator{{Type: "ip", Value: "203.0.113.66"}, {Type: "domain", Value: "c2-relay.example"}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.run(runCtx) }()
	defer func() { cancel(); <-done }()
	d.ObserveReport("dev-1", time.Now(), &gateway.Report{Version: 1, DestinationIPs: []string{"192.0.2.1", "203.0.113.66"}})
	awaitAlerts(t, st, "dev-1", "one intel-match alert", func(as []store.Alert) bool {
		return len(as) == 1 && as[0].RuleID == "intel-match" && as[0].Node == "n1"
	})

	// A report that names no address, only domains, as the gateway
	// parses it: a name under the indicated domain raises the same rule's
	// alert, naming the domain; the unrelated name raises nothing.
	rep, err := gateway.ParseReport([]byte(`{"version":1,"domains":["time.example.net","Beacon.C2-Relay.Example."]}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d.ObserveReport("dev-2", time.Now(), rep)
	as := awaitAlerts(t, st, "dev-2", "one intel-match alert for the domain", func(as []store.Alert) bool {
		return len(as) == 1 && as[0].RuleID == "intel-match" && as[0].Severity == "critical"
	})
	if want := "destination domain beacon.c2-relay.example matches c2 indicator c2-relay.example"; as[0].Summary != want {
		t.Fatalf("summary = %q, want %q", as[0].Summary, want)
	}
	var ev detect.Evidence
	if err := json.Unmarshal(as[0].Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Domain != "beacon.c2-relay.example" || ev.Indicator == nil || ev.Indicator.Feed != "c2" || ev.Indicator.Type != "domain" {
		t.Fatalf("evidence = %s", as[0].Evidence)
	}
	// Alerts are kept apart by domain: the same name again is another hit
	// of its alert, another name under the indicator is an alert of its own.
	rep, err = gateway.ParseReport([]byte(`{"version":1,"domains":["beacon.c2-relay.example","sync.c2-relay.example"]}`), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d.ObserveReport("dev-2", time.Now(), rep)
	awaitAlerts(t, st, "dev-2", "the beacon alert hit twice and a sync alert", func(as []store.Alert) bool {
		hits := map[string]int64{}
		for _, a := range as {
			hits[a.Summary] = a.Hits
		}
		return len(as) == 2 && hits["destination domain beacon.c2-relay.example matches c2 indicator c2-relay.example"] == 2 &&
			hits["destination domain sync.c2-relay.example matches c2 indicator c2-relay.example"] == 1
	})
}

// awaitAlerts polls device's alerts until ok holds of them, and returns
// them; it fails the test, saying it wanted want, after ten seconds.
func awaitAlerts(t *testing.T, st *store.Store, device, want string, ok func([]store.Alert) bool) []store.Alert {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		as, _, err := st.ListAlerts(t.Context(), store.AlertFilter{DeviceID: device}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if ok(as) {
			return as
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts = %+v, want %s", as, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
