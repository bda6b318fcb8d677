package alert

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// forEachStore runs fn on SQLite and, when configured, PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))) })
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		if u == "" {
			t.Skip("MUSTER_TEST_DATABASE_URL not set: PostgreSQL conformance tests skipped")
		}
		fn(t, openStore(t, u))
	})
}

func openStore(t *testing.T, u string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: u, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// activeDevice registers a device and moves it to active.
func activeDevice(t *testing.T, st *store.Store) *fleet.Device {
	t.Helper()
	ctx := context.Background()
	d := &fleet.Device{Identity: fleet.Identity{Serial: "SN-1", Model: "m1", Factory: "f1"}}
	if err := st.CreateDevice(ctx, d, "test"); err != nil {
		t.Fatal(err)
	}
	for _, to := range []fleet.State{fleet.StateProvisioned, fleet.StateActive} {
		if _, err := st.UpdateDevice(ctx, d.ID, 0, "test", func(d *fleet.Device) (*store.Change, error) {
			_, err := d.Move(to, "test", "", time.Now())
			return &store.Change{Type: fleet.EventStateChanged}, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func finding(dev string) detect.Finding {
	return detect.Finding{RuleID: "intel-match", Kind: detect.KindIntel, Severity: detect.SeverityCritical, DeviceID: dev, At: time.Now(),
		Actions: []detect.Action{detect.ActionQuarantine}, Auto: true,
		Evidence: detect.Evidence{Indicator: &detect.IntelMatch{Feed: "c2", Indicator: "203.0.113.66", Type: "ip"}, Address: "203.0.113.66", Direction: detect.DirectionDestination}}
}

func TestAutomaticQuarantineRecordedAndReverted(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		d := activeDevice(t, st)
		m := New(Config{Store: st})
		events, stop := m.Hub().Subscribe()
		defer stop()

		a, created, err := m.Raise(ctx, finding(d.ID))
		if err != nil || !created {
			t.Fatalf("Raise = %v, created %v", err, created)
		}
		if !strings.Contains(a.Summary, "203.0.113.66") || a.Severity != "critical" {
			t.Fatalf("alert = %+v", a)
		}
		if ev := <-events; ev.Event != store.EventAlertOpened || ev.Alert.ID != a.ID {
			t.Fatalf("hub event = %+v", ev)
		}
		got, _ := st.GetDevice(ctx, d.ID)
		if got.Lifecycle.State != fleet.StateQuarantined {
			t.Fatalf("device is %s, want quarantined", got.Lifecycle.State)
		}
		evs, _ := st.History(ctx, d.ID)
		last := evs[len(evs)-1]
		var data mitigationData
		if err := json.Unmarshal(last.Data, &data); err != nil || last.Type != fleet.EventStateChanged || data.AlertID != a.ID ||
			!data.Auto || last.Actor != DetectorActor || data.To != fleet.StateQuarantined {
			t.Fatalf("history event = %s %s by %s", last.Type, last.Data, last.Actor)
		}
		// The same finding again is the same alert: no second quarantine.
		if b, created, err := m.Raise(ctx, finding(d.ID)); err != nil || created || b.ID != a.ID || b.Hits != 2 {
			t.Fatalf("second Raise = %+v created=%v err=%v", b, created, err)
		}
		acts, _ := st.AlertActions(ctx, a.ID)
		if len(acts) != 1 || !acts[0].Auto || acts[0].Status != store.ActionApplied {
			t.Fatalf("actions = %+v", acts)
		}
		if _, err := m.Revert(ctx, acts[0].ID, "operator/ann", "false positive"); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.GetDevice(ctx, d.ID); got.Lifecycle.State != fleet.StateActive {
			t.Fatalf("device is %s after revert", got.Lifecycle.State)
		}
		// Without a revocation service, revoke fails and says so, on the record.
		act, err := m.Apply(ctx, a.ID, detect.ActionRevoke, "operator/ann", false)
		if !errors.Is(err, ErrUnavailable) || act == nil || act.Status != store.ActionFailed {
			t.Fatalf("revoke without a revoker = %+v, %v", act, err)
		}
		if _, err := m.Apply(ctx, a.ID, "group:"+OperatorsGroup, "operator/ann", false); err == nil {
			t.Fatal("a mitigation added a device to the operators' group")
		}
		// Add to a group, then revert it.
		g, err := m.Apply(ctx, a.ID, "group:watchlist", "operator/ann", false)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := st.GetDevice(ctx, d.ID); len(got.Inventory.Groups) != 1 || got.Inventory.Groups[0] != "watchlist" {
			t.Fatalf("groups = %v", got.Inventory.Groups)
		}
		if _, err := m.Revert(ctx, g.ID, "operator/ann", ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.GetDevice(ctx, d.ID); len(got.Inventory.Groups) != 0 {
			t.Fatalf("groups after revert = %v", got.Inventory.Groups)
		}
		if _, err := m.Revert(ctx, act.ID, "operator/ann", ""); !errors.Is(err, store.ErrAlertState) {
			t.Fatalf("reverting a failed action = %v", err)
		}
	})
}

func TestEnqueueRunsFindings(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	d := activeDevice(t, st)
	m := New(Config{Store: st, Queue: 1})
	f := finding(d.ID)
	f.Auto = false
	m.Enqueue(f)
	m.Enqueue(f) // the queue holds one: this one is dropped and counted
	if m.Dropped() != 1 {
		t.Fatalf("dropped = %d", m.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	events, stop := m.Hub().Subscribe()
	defer stop()
	deadline := time.After(10 * time.Second)
	for {
		as, _, _ := st.ListAlerts(context.Background(), store.AlertFilter{DeviceID: d.ID}, "", 10)
		if len(as) == 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the queued finding was never recorded")
		case <-events:
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
}

func TestWebhookDeliverySignedAndRetried(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	ctx := context.Background()
	var calls atomic.Int32
	var verified atomic.Bool
	const secret = "0123456789abcdef-secret"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		err := Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, 5*time.Minute, time.Now())
		var ev store.AlertEvent
		if err == nil && json.Unmarshal(body, &ev) == nil && ev.Event == store.EventAlertOpened && r.Header.Get(HeaderEvent) == ev.Event {
			verified.Store(true)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if err := st.CreateWebhook(ctx, &store.Webhook{URL: srv.URL, Secret: secret, MinSeverity: "high"}, "admin"); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Store: st})
	f := finding("dev-x")
	f.Auto = false
	if _, _, err := m.Raise(ctx, f); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	dl := &Deliverer{Store: st, Client: srv.Client(), Now: func() time.Time { return clock }}
	if n := dl.DeliverDue(ctx); n != 1 || calls.Load() != 1 {
		t.Fatalf("first round tried %d, server saw %d", n, calls.Load())
	}
	// Not due yet: the retry waits for its backoff.
	if n := dl.DeliverDue(ctx); n != 0 {
		t.Fatalf("retried before the backoff: %d", n)
	}
	time.Sleep(firstBackoff + 100*time.Millisecond)
	if n := dl.DeliverDue(ctx); n != 1 || !verified.Load() {
		t.Fatalf("second round tried %d, verified %v", n, verified.Load())
	}
	if n := dl.DeliverDue(ctx); n != 0 {
		t.Fatalf("a delivered event was sent again")
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	body := []byte(`{"event":"alert.opened"}`)
	now := time.Now()
	ts := now.Unix()
	good := Sign("s3cret-s3cret-s3", ts, body)
	cases := map[string]struct {
		secret, ts, sig string
		body            []byte
	}{
		"wrong secret":    {"other", strconvI(ts), good, body},
		"changed body":    {"s3cret-s3cret-s3", strconvI(ts), good, []byte(`{"event":"alert.resolved"}`)},
		"stale":           {"s3cret-s3cret-s3", strconvI(ts - 3600), Sign("s3cret-s3cret-s3", ts-3600, body), body},
		"bad timestamp":   {"s3cret-s3cret-s3", "yesterday", good, body},
		"no signature":    {"s3cret-s3cret-s3", strconvI(ts), "", body},
		"other algorithm": {"s3cret-s3cret-s3", strconvI(ts), strings.Replace(good, "sha256=", "sha1=", 1), body},
	}
	for name, c := range cases {
		if err := Verify(c.secret, c.ts, c.sig, c.body, 5*time.Minute, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v", name, err)
		}
	}
	if err := Verify("s3cret-s3cret-s3", strconvI(ts), good, body, 5*time.Minute, now); err != nil {
		t.Errorf("a genuine delivery: %v", err)
	}
}

func strconvI(v int64) string { return strconv.FormatInt(v, 10) }

// pollSignal closes first once the first ListAlerts has returned.
type pollSignal struct {
	Lister
	once  sync.Once
	first chan struct{}
}

func (p *pollSignal) ListAlerts(ctx context.Context, f store.AlertFilter, cursor string, limit int) ([]store.Alert, string, error) {
	as, next, err := p.Lister.ListAlerts(ctx, f, cursor, limit)
	p.once.Do(func() { close(p.first) })
	return as, next, err
}

// TestFollowOtherNodes: an alert opened on node n1 reaches node n2's
// streams, and so do acknowledgements and resolutions made through n1; n2's
// own alerts and changes and those that existed before are not repeated.
func TestFollowOtherNodes(t *testing.T) {
	st := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n1, n2 := New(Config{Store: st, Node: "n1"}), New(Config{Store: st, Node: "n2"})
	old := finding("dev-old")
	old.Auto = false
	if _, _, err := n1.Raise(ctx, old); err != nil {
		t.Fatal(err)
	}
	events, stop := n2.Hub().Subscribe()
	defer stop()
	done := make(chan struct{})
	polled := &pollSignal{Lister: st, first: make(chan struct{})}
	go func() { n2.Follow(ctx, polled, 20*time.Millisecond); close(done) }()
	// What exists when Follow first reads is not news: wait for that read,
	// so the alerts below are new to it however slow the machine is.
	<-polled.first
	f := finding("dev-new")
	f.Auto = false
	a, _, err := n1.Raise(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	own := finding("dev-own")
	own.Auto = false
	b, _, err := n2.Raise(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	// Wait (generously, for a loaded machine) until both arrived, then
	// listen a little longer, past many polls, for duplicates.
	collect := func(want ...string) map[string]int {
		got := map[string]int{}
		timeout := time.After(10 * time.Second)
		var settle <-chan time.Time
		for {
			select {
			case ev := <-events:
				got[ev.Event+" "+ev.Alert.ID]++
				if settle == nil && slices.IndexFunc(want, func(k string) bool { return got[k] == 0 }) < 0 {
					settle = time.After(1500 * time.Millisecond)
				}
			case <-settle:
				return got
			case <-timeout:
				return got
			}
		}
	}
	opened := func(id string) string { return store.EventAlertOpened + " " + id }
	if got := collect(opened(a.ID), opened(b.ID)); got[opened(a.ID)] != 1 || got[opened(b.ID)] != 1 || len(got) != 2 {
		t.Fatalf("n2's stream saw %v; want %s (from n1) and %s (its own) once each, nothing older", got, a.ID, b.ID)
	}

	// Acknowledgements and resolutions made through n1 reach n2's stream;
	// n2's own appear there once, not again from the poll.
	if _, err := n1.Acknowledge(ctx, a.ID, "operator/o1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Acknowledge(ctx, b.ID, "operator/o2"); err != nil {
		t.Fatal(err)
	}
	acked := func(id string) string { return store.EventAlertAcknowledged + " " + id }
	if got := collect(acked(a.ID), acked(b.ID)); got[acked(a.ID)] != 1 || got[acked(b.ID)] != 1 || len(got) != 2 {
		t.Fatalf("n2's stream saw %v; want each acknowledgement once", got)
	}
	if _, err := n1.Resolve(ctx, a.ID, "operator/o1", "false positive"); err != nil {
		t.Fatal(err)
	}
	resolved := store.EventAlertResolved + " " + a.ID
	if got := collect(resolved); got[resolved] != 1 || len(got) != 1 {
		t.Fatalf("n2's stream saw %v; want %s once", got, resolved)
	}
	cancel()
	<-done
}
