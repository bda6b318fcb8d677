package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestIntelFeedReplacedAtomically(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		rev0, err := s.IntelRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.ReplaceIntelFeed(ctx, IntelFeed{Name: "c2", Format: "list"},
			[]IntelIndicator{{"ip", "203.0.113.9", ""}, {"cidr", "198.51.100.0/24", "bad net"}, {"ip", "203.0.113.9", "dup"}}, "operator/ops")
		if err != nil {
			t.Fatal(err)
		}
		if f.Version != 1 || f.Indicators != 3 {
			t.Fatalf("feed = %+v", f)
		}
		// The second import replaces the set: the old indicators are gone.
		if f, err = s.ReplaceIntelFeed(ctx, IntelFeed{Name: "c2", Format: "stix"}, []IntelIndicator{{"domain", "evil.example", "x"}}, "operator/ops"); err != nil || f.Version != 2 {
			t.Fatalf("second import: %+v, %v", f, err)
		}
		inds, err := s.IntelIndicators(ctx, "c2")
		if err != nil || len(inds) != 1 || inds[0].Value != "evil.example" {
			t.Fatalf("indicators = %+v, %v", inds, err)
		}
		// An empty import is refused and changes nothing.
		if _, err := s.ReplaceIntelFeed(ctx, IntelFeed{Name: "c2"}, nil, "x"); err == nil {
			t.Fatal("empty import accepted")
		}
		if inds, _ := s.IntelIndicators(ctx, "c2"); len(inds) != 1 {
			t.Fatalf("empty import changed the feed: %+v", inds)
		}
		rev1, _ := s.IntelRevision(ctx)
		if rev1 != rev0+2 {
			t.Fatalf("revision %d -> %d, want +2", rev0, rev1)
		}
		feeds, _ := s.IntelFeeds(ctx)
		if len(feeds) != 1 || feeds[0].Format != "stix" || feeds[0].ImportedBy != "operator/ops" {
			t.Fatalf("feeds = %+v", feeds)
		}
		if err := s.DeleteIntelFeed(ctx, "c2", "operator/ops"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIntelFeed(ctx, "c2", "operator/ops"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete = %v", err)
		}
		if inds, _ := s.IntelIndicators(ctx, "c2"); len(inds) != 0 {
			t.Fatalf("indicators left after delete: %+v", inds)
		}
	})
}

func TestAlertDedupLifecycleAndDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		hook := &Webhook{URL: "https://example.test/hook", Secret: "s3cret", MinSeverity: "high"}
		if err := s.CreateWebhook(ctx, hook, "admin"); err != nil {
			t.Fatal(err)
		}
		raise := func(sev string) (*Alert, bool) {
			t.Helper()
			a, created, err := s.RaiseAlert(ctx, Alert{DedupKey: "port-scan/dev1", RuleID: "port-scan", DeviceID: "dev1", Severity: sev,
				Summary: "scan", Evidence: json.RawMessage(`{"value":300}`), Actions: []string{"quarantine"}})
			if err != nil {
				t.Fatal(err)
			}
			return a, created
		}
		a1, created := raise("medium")
		if !created || a1.State != AlertOpen || a1.Hits != 1 {
			t.Fatalf("first raise: %+v created=%v", a1, created)
		}
		a2, created := raise("high")
		if created || a2.ID != a1.ID || a2.Hits != 2 || a2.Severity != "high" {
			t.Fatalf("second raise: %+v created=%v", a2, created)
		}
		// The medium alert was below the webhook's minimum: nothing queued.
		if ds, _ := s.Deliveries(ctx, hook.ID, 10); len(ds) != 0 {
			t.Fatalf("deliveries for a medium alert: %+v", ds)
		}
		if _, err := s.AcknowledgeAlert(ctx, a1.ID, "operator/ann"); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetAlert(ctx, a1.ID)
		if got.State != AlertAcknowledged || got.AckedBy != "operator/ann" || got.AckedAt == nil {
			t.Fatalf("after ack: %+v", got)
		}
		if _, err := s.ResolveAlert(ctx, a1.ID, "operator/ann", "false alarm"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveAlert(ctx, a1.ID, "operator/ann", ""); !errors.Is(err, ErrAlertState) {
			t.Fatalf("resolving twice = %v", err)
		}
		if _, err := s.AcknowledgeAlert(ctx, a1.ID, "x"); !errors.Is(err, ErrAlertState) {
			t.Fatalf("acknowledging a resolved alert = %v", err)
		}
		if _, err := s.AcknowledgeAlert(ctx, "alr_nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("acknowledging an unknown alert = %v", err)
		}
		// After resolution the rule firing again opens a new alert, which
		// (high) is queued for the webhook.
		a3, created := raise("high")
		if !created || a3.ID == a1.ID {
			t.Fatalf("raise after resolve: %+v created=%v", a3, created)
		}
		open, next, err := s.ListAlerts(ctx, AlertFilter{State: AlertOpen}, "", 10)
		if err != nil || len(open) != 1 || open[0].ID != a3.ID || next != "" {
			t.Fatalf("open alerts = %+v next=%q err=%v", open, next, err)
		}
		all, next, _ := s.ListAlerts(ctx, AlertFilter{DeviceID: "dev1"}, "", 1)
		if len(all) != 1 || all[0].ID != a3.ID || next == "" {
			t.Fatalf("page 1 = %+v next=%q", all, next)
		}
		if rest, next2, _ := s.ListAlerts(ctx, AlertFilter{DeviceID: "dev1"}, next, 1); len(rest) != 1 || rest[0].ID != a1.ID || next2 != "" {
			t.Fatalf("page 2 = %+v next=%q", rest, next2)
		}

		// Deliveries: a1 acknowledged and resolved (high by then), a3
		// opened, in that order.
		ds, err := s.ClaimDeliveries(ctx, 10, time.Minute)
		if err != nil || len(ds) != 3 || ds[0].URL != hook.URL || ds[0].Secret != "s3cret" {
			t.Fatalf("claimed %d deliveries, %v", len(ds), err)
		}
		for i, want := range []struct{ event, alert string }{{EventAlertAcknowledged, a1.ID}, {EventAlertResolved, a1.ID}, {EventAlertOpened, a3.ID}} {
			var ev AlertEvent
			if err := json.Unmarshal(ds[i].Payload, &ev); err != nil || ev.Event != want.event || ev.Alert.ID != want.alert {
				t.Fatalf("delivery %d payload = %s, %v", i, ds[i].Payload, err)
			}
		}
		ds = []Delivery{ds[0], ds[2]}
		// Claimed deliveries are not handed out twice while leased.
		if again, _ := s.ClaimDeliveries(ctx, 10, time.Minute); len(again) != 0 {
			t.Fatalf("claimed twice: %+v", again)
		}
		if err := s.FinishDelivery(ctx, ds[0].ID, true, "", nil); err != nil {
			t.Fatal(err)
		}
		past := time.Now().Add(-time.Second)
		if err := s.FinishDelivery(ctx, ds[1].ID, false, "503", &past); err != nil {
			t.Fatal(err)
		}
		retry, _ := s.ClaimDeliveries(ctx, 10, time.Minute)
		if len(retry) != 1 || retry[0].ID != ds[1].ID || retry[0].Attempts != 1 || retry[0].LastError != "503" {
			t.Fatalf("retry = %+v", retry)
		}
		if err := s.FinishDelivery(ctx, retry[0].ID, false, "503 again", nil); err != nil {
			t.Fatal(err)
		}
		listed, _ := s.Deliveries(ctx, hook.ID, 10)
		states := map[string]string{}
		for _, d := range listed {
			states[d.ID] = d.State
		}
		if states[ds[0].ID] != DeliveryDelivered || states[ds[1].ID] != DeliveryFailed {
			t.Fatalf("delivery states = %v", states)
		}

		// Bad input is refused and nothing is stored.
		if _, _, err := s.RaiseAlert(ctx, Alert{DedupKey: "k", RuleID: "r", DeviceID: "d", Severity: "urgent"}); err == nil {
			t.Fatal("unknown severity accepted")
		}
		if err := s.CreateWebhook(ctx, &Webhook{URL: "https://x", MinSeverity: "low"}, "admin"); err == nil {
			t.Fatal("webhook without a secret accepted")
		}
	})
}

func TestAlertActionsAndIncidents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		a, _, err := s.RaiseAlert(ctx, Alert{DedupKey: "intel/d", RuleID: "intel-match", DeviceID: "d", Severity: "critical"})
		if err != nil {
			t.Fatal(err)
		}
		act, err := s.RecordAlertAction(ctx, AlertAction{AlertID: a.ID, DeviceID: "d", Action: "quarantine", Status: ActionApplied, Auto: true, Actor: "detector"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarkActionReverted(ctx, act.ID, "operator/ann"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarkActionReverted(ctx, act.ID, "operator/ann"); !errors.Is(err, ErrAlertState) {
			t.Fatalf("reverting twice = %v", err)
		}
		acts, _ := s.AlertActions(ctx, a.ID)
		if len(acts) != 1 || acts[0].Status != ActionReverted || !acts[0].Auto || acts[0].RevertedBy != "operator/ann" {
			t.Fatalf("actions = %+v", acts)
		}

		in, err := s.CreateIncident(ctx, "C2 beaconing on d", []string{a.ID}, "operator/ann")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIncident(ctx, "bad", []string{"alr_missing"}, "operator/ann"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("incident with an unknown alert = %v", err)
		}
		if list, _ := s.ListIncidents(ctx, "", 10); len(list) != 1 {
			t.Fatalf("a failed incident was stored: %+v", list)
		}
		in, err = s.UpdateIncident(ctx, in.ID, []string{a.ID}, "isolated the device", IncidentClosed, "operator/bob")
		if err != nil {
			t.Fatal(err)
		}
		if in.State != IncidentClosed || in.ClosedAt == nil || len(in.AlertIDs) != 1 || len(in.Notes) != 1 || in.Notes[0].Author != "operator/bob" {
			t.Fatalf("incident = %+v", in)
		}
		if _, err := s.UpdateIncident(ctx, "inc_missing", nil, "x", "", "y"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("updating an unknown incident = %v", err)
		}
	})
}

func TestDetectRulesSeededOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		rule := DetectRule{ID: "r1", Doc: json.RawMessage(`{"id":"r1","kind":"intel","severity":"high"}`)}
		if seeded, err := s.SeedDetectRules(ctx, []DetectRule{rule}, "muster"); err != nil || !seeded {
			t.Fatalf("first seed = %v, %v", seeded, err)
		}
		if err := s.DeleteDetectRule(ctx, "r1", "operator/ann"); err != nil {
			t.Fatal(err)
		}
		// The operator deleted it: seeding again does not bring it back.
		if seeded, err := s.SeedDetectRules(ctx, []DetectRule{rule}, "muster"); err != nil || seeded {
			t.Fatalf("second seed = %v, %v", seeded, err)
		}
		if rs, _ := s.DetectRules(ctx); len(rs) != 0 {
			t.Fatalf("rules = %+v", rs)
		}
		if err := s.SaveDetectRules(ctx, []DetectRule{rule}, "operator/ann"); err != nil {
			t.Fatal(err)
		}
		rs, _ := s.DetectRules(ctx)
		if len(rs) != 1 || rs[0].UpdatedBy != "operator/ann" {
			t.Fatalf("rules = %+v", rs)
		}
		if err := s.DeleteDetectRule(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting an unknown rule = %v", err)
		}
	})
}
