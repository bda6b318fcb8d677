package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// gateStore holds a run in progress: EachAuditDevice hands every device
// to the check, then tells reached and waits for release (or the run's
// context to end). With fail set it fails instead of waiting.
type gateStore struct {
	Store
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	fail    error

	progressWrites atomic.Int64
}

func newGate(st Store) *gateStore {
	return &gateStore{Store: st, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateStore) EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error {
	if err := g.Store.EachAuditDevice(ctx, fn); err != nil {
		return err
	}
	g.once.Do(func() { close(g.reached) })
	if g.fail != nil {
		return g.fail
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateStore) AuditRunProgress(ctx context.Context, id string, p store.AuditProgress) error {
	g.progressWrites.Add(1)
	return g.Store.AuditRunProgress(ctx, id, p)
}

// waitFor waits, with a generous deadline, until the run the store holds
// under id satisfies ok, and returns it.
func waitFor(t *testing.T, st *store.Store, id string, what string, ok func(*store.AuditRun) bool) *store.AuditRun {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		run, err := st.AuditRun(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never %s: %+v", id, what, run)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ended(r *store.AuditRun) bool { return r.Status != store.AuditRunning }

// waitReached waits until a run is held at the gate.
func waitReached(t *testing.T, g *gateStore) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the run never reached the gate")
	}
}

// auditFleet shapes the fleet of TestRunAllChecksTwice: three findings.
func auditFleet(t *testing.T, f *fixture) {
	importTestdata(t, f.st)
	f.device(fleet.StateActive, f.cert(epoch.Add(-400*24*time.Hour), 420*24*time.Hour), func(d *fleet.Device) {
		d.Provisioning.Firmware = []fleet.FirmwareVersion{{Component: "acme-fw", Version: "1.0.0"}}
	})
}

// TestStartRunsInBackground: Start returns the run recorded as running
// while it runs; the node refuses a second run naming the first; progress
// is recorded while the run is held; and the run ends done with the
// counts a synchronous run over the same fleet gives.
func TestStartRunsInBackground(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		auditFleet(t, f)
		sync := newFixture(t)
		auditFleet(t, sync)
		rs, _ := New(Config{Store: sync.st, Node: "n1", Now: func() time.Time { return *sync.now.Load() }})
		want, err := rs.Run(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}

		g := newGate(f.st)
		r, err := New(Config{Store: g, Node: "n1", Now: func() time.Time { return *f.now.Load() }, ProgressEvery: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop(context.Background()) })
		run, err := r.Start(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != store.AuditRunning || run.ID == "" || len(run.Checks) != len(All()) || run.FinishedAt != nil {
			t.Fatalf("started run = %+v", run)
		}
		waitReached(t, g)
		// Held at the gate after reading the one device: the store shows
		// the run running, with the device counted.
		held := waitFor(t, f.st, run.ID, "reported its device", func(r *store.AuditRun) bool { return r.Progress.Devices == 1 })
		if held.Status != store.AuditRunning || held.Progress.UpdatedAt.IsZero() || held.Progress.Check == "" {
			t.Errorf("held run = %+v", held)
		}

		var busy *BusyError
		if _, err := r.Start(t.Context(), Request{Actor: "auditor/bob"}); !errors.As(err, &busy) || busy.RunID != run.ID || !errors.Is(err, ErrBusy) {
			t.Errorf("second Start = %v, want busy with %s", err, run.ID)
		}
		if _, err := r.Run(t.Context(), Request{Kind: store.AuditScheduled, Slot: "scheduled:x"}); !errors.Is(err, ErrBusy) {
			t.Errorf("scheduled run during a background run = %v", err)
		}
		if runs, _ := f.st.AuditRuns(t.Context(), 10); len(runs) != 1 {
			t.Errorf("refused runs were recorded: %+v", runs)
		}

		close(g.release)
		done := waitFor(t, f.st, run.ID, "ended", ended)
		if done.Status != store.AuditDone || done.FinishedAt == nil || done.Error != "" {
			t.Fatalf("run = %+v", done)
		}
		got, exp := done.Counts, want.Counts
		if got.Findings != exp.Findings || got.New != exp.New || got.Resolved != exp.Resolved || got.Open != exp.Open ||
			got.BySeverity[SeverityHigh] != exp.BySeverity[SeverityHigh] || got.Findings != 3 {
			t.Errorf("background counts %+v, synchronous %+v", got, exp)
		}
		if p := done.Progress; p.ChecksDone != len(All()) || p.Check != "" || p.Devices != 1 || p.Certificates < 1 || p.Findings != 3 {
			t.Errorf("final progress = %+v", p)
		}
		// The node is free again.
		again, err := r.Start(t.Context(), Request{Actor: "auditor/alice", Checks: []string{"weak-key"}})
		if err != nil {
			t.Fatalf("Start after the run ended: %v", err)
		}
		waitFor(t, f.st, again.ID, "ended", ended)
	})
}

// TestStartFailureRecorded: a background run whose check fails is
// recorded failed with the reason, and its findings are left alone.
func TestStartFailureRecorded(t *testing.T) {
	f := newFixture(t)
	auditFleet(t, f)
	g := newGate(f.st)
	g.fail = errors.New("disk on fire")
	r, _ := New(Config{Store: g, Node: "n1", Now: func() time.Time { return *f.now.Load() }})
	run, err := r.Start(t.Context(), Request{Actor: "auditor/alice"})
	if err != nil {
		t.Fatal(err)
	}
	failed := waitFor(t, f.st, run.ID, "ended", ended)
	if failed.Status != store.AuditFailed || !strings.Contains(failed.Error, "disk on fire") || !strings.Contains(failed.Error, "check ") || failed.FinishedAt == nil {
		t.Errorf("failed run = %+v", failed)
	}
	if fs, _, _ := f.st.ListFindings(t.Context(), store.FindingFilter{}, "", 10); len(fs) != 0 {
		t.Errorf("a failed run stored findings: %+v", fs)
	}
	if err := r.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestStopCancelsRuns: Stop cancels a background run, which is recorded
// failed as "node stopping" before Stop returns, and refuses new runs.
func TestStopCancelsRuns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		auditFleet(t, f)
		g := newGate(f.st)
		r, _ := New(Config{Store: g, Node: "n1", Now: func() time.Time { return *f.now.Load() }})
		run, err := r.Start(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		waitReached(t, g)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// Recorded before Stop returned: no polling.
		got, err := f.st.AuditRun(t.Context(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.AuditFailed || got.Error != ErrStopping.Error() || got.FinishedAt == nil {
			t.Errorf("stopped run = %+v", got)
		}
		if _, err := r.Start(t.Context(), Request{}); !errors.Is(err, ErrStopping) {
			t.Errorf("Start after Stop = %v", err)
		}
		if _, err := r.Run(t.Context(), Request{}); !errors.Is(err, ErrStopping) {
			t.Errorf("Run after Stop = %v", err)
		}
		if runs, _ := f.st.AuditRuns(t.Context(), 10); len(runs) != 1 {
			t.Errorf("runs after Stop = %+v", runs)
		}
	})
}

// TestAbandonedBackgroundRun: an on-demand run whose node died is
// recorded failed by that node's next run, or by any node's run an hour
// later, and stays failed should its node turn out alive after all.
func TestAbandonedBackgroundRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		auditFleet(t, f)
		now := func() time.Time { return *f.now.Load() }
		// Node a "dies" with its run held at the gate.
		g := newGate(f.st)
		dead, _ := New(Config{Store: g, Node: "a", Now: now})
		lost, err := dead.Start(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		waitReached(t, g)
		// Node b's run leaves it alone: it may be alive.
		b, _ := New(Config{Store: f.st, Node: "b", Now: now})
		if _, err := b.Run(t.Context(), Request{Checks: []string{"weak-key"}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.st.AuditRun(t.Context(), lost.ID); got.Status != store.AuditRunning {
			t.Fatalf("another node's run failed a live run: %+v", got)
		}
		// An hour later, node b's run records it failed.
		f.setNow(epoch.Add(time.Hour + time.Minute))
		if _, err := b.Run(t.Context(), Request{Checks: []string{"weak-key"}}); err != nil {
			t.Fatal(err)
		}
		got, _ := f.st.AuditRun(t.Context(), lost.ID)
		if got.Status != store.AuditFailed || !strings.Contains(got.Error, "abandoned") {
			t.Fatalf("abandoned run = %+v", got)
		}
		// Node a was alive after all: its late finish changes nothing.
		close(g.release)
		if err := dead.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if again, _ := f.st.AuditRun(t.Context(), lost.ID); again.Status != store.AuditFailed || again.Error != got.Error {
			t.Errorf("a late finish rewrote the abandoned run: %+v", again)
		}
		if fs, _, _ := f.st.ListFindings(t.Context(), store.FindingFilter{Check: "vulnerable-firmware"}, "", 10); len(fs) != 0 {
			t.Errorf("a late finish stored findings: %+v", fs)
		}

		// A restarted node a fails its own earlier run at its next run,
		// without waiting an hour.
		g2 := newGate(f.st)
		dead2, _ := New(Config{Store: g2, Node: "a", Now: now})
		lost2, err := dead2.Start(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		waitReached(t, g2)
		restarted, _ := New(Config{Store: f.st, Node: "a", Now: now})
		if _, err := restarted.Run(t.Context(), Request{Checks: []string{"weak-key"}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.st.AuditRun(t.Context(), lost2.ID); got.Status != store.AuditFailed || !strings.Contains(got.Error, "abandoned") {
			t.Errorf("node a's earlier run after its restart = %+v", got)
		}
		close(g2.release)
		dead2.Stop(t.Context())
	})
}

// TestProgressWritesBounded: progress is recorded at intervals, not per
// row: with an interval longer than the run, only the final report is
// written however many rows the run reads.
func TestProgressWritesBounded(t *testing.T) {
	f := newFixture(t)
	for range 20 {
		f.device(fleet.StateActive, f.cert(epoch.Add(-time.Hour), 420*24*time.Hour))
	}
	g := newGate(f.st)
	close(g.release)
	r, _ := New(Config{Store: g, Node: "n1", Now: func() time.Time { return *f.now.Load() }, ProgressEvery: time.Hour})
	run, err := r.Run(t.Context(), Request{})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.progressWrites.Load(); n != 1 {
		t.Errorf("%d progress writes for a run shorter than the interval, want 1", n)
	}
	if run.Progress.Devices != 20 || run.Progress.Certificates < 20 {
		t.Errorf("progress = %+v", run.Progress)
	}
	if _, err := New(Config{Store: f.st, ProgressEvery: -time.Second}); err == nil {
		t.Error("negative progress interval accepted")
	}
}

// TestScheduleStopFailsRun: a scheduled run cut short because the
// schedule ends (the node stops) is recorded failed as "node stopping".
func TestScheduleStopFailsRun(t *testing.T) {
	f := newFixture(t)
	auditFleet(t, f)
	g := newGate(f.st)
	r, _ := New(Config{Store: g, Node: "n1", Now: func() time.Time { return *f.now.Load() }})
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- r.RunSchedule(ctx, time.Hour) }()
	waitReached(t, g)
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	runs, _ := f.st.AuditRuns(t.Context(), 10)
	if len(runs) != 1 || runs[0].Kind != store.AuditScheduled || runs[0].Status != store.AuditFailed || runs[0].Error != ErrStopping.Error() {
		t.Errorf("runs = %+v", runs)
	}
}
