package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/store"
)

// TestScheduledAudit: a node started with an audit interval audits the
// current slot at once, as a scheduled run; a node without one does not.
func TestScheduledAudit(t *testing.T) {
	for _, interval := range []time.Duration{time.Hour, 0} {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := New(ctx, Config{
			DataDir: dir, APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			CAPassphrase: []byte("test passphrase"), Logger: slog.New(slog.DiscardHandler),
			Audit: AuditConfig{Interval: interval, Params: audit.Params{NotSeenAfter: 7 * 24 * time.Hour}},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		var runs []store.AuditRun
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if runs, err = srv.Store().AuditRuns(ctx, 10); err != nil {
				t.Fatal(err)
			}
			if len(runs) > 0 && runs[0].Status != store.AuditRunning || interval == 0 && time.Until(deadline) < 13*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		switch {
		case interval == 0 && len(runs) != 0:
			t.Errorf("a node without a schedule audited: %+v", runs)
		case interval > 0 && (len(runs) != 1 || runs[0].Kind != store.AuditScheduled || runs[0].Status != store.AuditDone ||
			!strings.HasPrefix(runs[0].Slot, "scheduled:") || len(runs[0].Checks) != len(audit.All())):
			t.Errorf("scheduled runs = %+v", runs)
		}
		if got := srv.audit.Params().NotSeenAfter; got != 7*24*time.Hour {
			t.Errorf("audit parameters not passed on: not-seen %v", got)
		}
	}
}

// heldStore holds an audit run at its device scan until the run's
// context ends.
type heldStore struct {
	audit.Store
	reached chan struct{}
	once    sync.Once
}

func (s *heldStore) EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error {
	if err := s.Store.EachAuditDevice(ctx, fn); err != nil {
		return err
	}
	s.once.Do(func() { close(s.reached) })
	<-ctx.Done()
	return ctx.Err()
}

// TestStopFailsBackgroundAudit: a node stopping gracefully cancels the
// audit the API started in the background and records it failed ("node
// stopping") before it closes its store, so no run is left running.
func TestStopFailsBackgroundAudit(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := &heldStore{reached: make(chan struct{})}
	srv, err := New(ctx, Config{
		DataDir: dir, APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		CAPassphrase: []byte("test passphrase"), Logger: slog.New(slog.DiscardHandler),
		Audit: AuditConfig{wrapStore: func(st audit.Store) audit.Store { held.Store = st; return held }},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	run, err := srv.audit.Start(ctx, audit.Request{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the audit never reached the held read")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Run closed the store; read what it left.
	st, err := store.Open(context.Background(), store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.AuditRun(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.AuditFailed || got.Error != "node stopping" || got.FinishedAt == nil {
		t.Errorf("run after a graceful stop = %+v", got)
	}
	if _, err := srv.audit.Start(context.Background(), audit.Request{}); !errors.Is(err, audit.ErrStopping) {
		t.Errorf("Start after the node stopped = %v", err)
	}
}

// TestStartFailsLeftoverAuditRuns: a node that died during an audit and
// starts again records that run failed at once, not only at its next
// audit; another node's running audit is left alone.
func TestStartFailsLeftoverAuditRuns(t *testing.T) {
	url := sharedDatabase(t)
	st, err := store.Open(t.Context(), store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	leftover := &store.AuditRun{Kind: store.AuditManual, Actor: "operator/o", Node: "n1"}
	other := &store.AuditRun{Kind: store.AuditManual, Actor: "operator/o", Node: "n2"}
	for _, r := range []*store.AuditRun{leftover, other} {
		if err := st.StartAuditRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	n := runNode(t, Config{DatabaseURL: url, NodeID: "n1", CAPassphrase: []byte("audit test passphrase")})
	for id, want := range map[string]string{leftover.ID: store.AuditFailed, other.ID: store.AuditRunning} {
		r, err := n.srv.store.AuditRun(t.Context(), id)
		if err != nil || r.Status != want {
			t.Errorf("run %s = %+v, %v; want %s", id, r, err, want)
		}
	}
}
