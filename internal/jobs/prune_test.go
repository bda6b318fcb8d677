package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store"
)

// testClock is a settable clock shared by a store and its runners.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// retentionNode is a node whose runner keeps finished jobs for retention,
// on the given clock.
func retentionNode(t *testing.T, st *store.Store, name string, clock *testClock, retention time.Duration, chunk int) *node {
	t.Helper()
	m, err := lease.New(lease.Config{Store: st, Node: name, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.Config{Store: st, ChunkRows: chunk, Now: clock.Now, Retention: retention, PruneEvery: 20 * time.Millisecond}
	return &node{svc: jobs.NewService(cfg), runner: jobs.NewRunner(cfg, m, 20*time.Millisecond), wait: time.Minute}
}

func jobChunks(t *testing.T, st *store.Store, id string) int {
	t.Helper()
	var n int
	q := "SELECT COUNT(*) FROM job_chunks WHERE job_id = ?"
	if st.Backend() == "postgres" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	if err := st.DB().QueryRow(q, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// retentionDeletes returns the ids in the fleet audit log's job.deleted
// events by the retention actor.
func retentionDeletes(t *testing.T, st *store.Store) []string {
	t.Helper()
	log, err := st.History(context.Background(), fleet.FleetSubject)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range log {
		if e.Type == fleet.EventJobDeleted && e.Actor == jobs.RetentionActor {
			for _, part := range strings.Split(string(e.Data), `"`) {
				if strings.HasPrefix(part, "job_") {
					ids = append(ids, part)
					break
				}
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// TestPrune: finished jobs older than the retention go, with every stored
// chunk and result and an audit event each, in batches; running, queued and
// recent jobs stay; pruning again changes nothing; and while another node
// holds the prune lease this node deletes nothing.
func TestPrune(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := &testClock{now: t0}
		st, err := store.Open(ctx, store.Config{URL: url, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		putTemplate(t, st, "sensor")
		const retention = 30 * 24 * time.Hour
		// Chunks of 2 rows: the old done job has more chunks than one
		// purge batch.
		rowsBig := 2*store.PurgeBatchChunks*2 + 3
		a := retentionNode(t, st, "node-a", clock, retention, 2)
		b := retentionNode(t, st, "node-b", clock, retention, 2)

		oldDone := start(t, a, registerSpec, registerManifest(rowsBig), mfg.FormatJSONL)
		if j := a.runUntilFinished(t, oldDone.ID); j.Status != store.JobDone || j.Chunks <= store.PurgeBatchChunks {
			t.Fatalf("old job: %+v", j)
		}
		oldCancelled := start(t, a, registerSpec, strings.ReplaceAll(registerManifest(3), "SN-", "SC-"), mfg.FormatJSONL)
		if _, err := a.svc.Cancel(ctx, oldCancelled.ID, "admin/test", "test"); err != nil {
			t.Fatal(err)
		}
		// A job some node is running (it holds the lease; no runner here
		// takes it) and a queued one.
		oldRunning := start(t, a, registerSpec, strings.ReplaceAll(registerManifest(3), "SN-", "SR-"), mfg.FormatJSONL)
		// node-z's leases outlive the clock's jumps below.
		const forever = 10 * 365 * 24 * time.Hour
		l, err := st.AcquireLease(ctx, "job:"+oldRunning.ID, "node-z", forever)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.StartJob(ctx, l, oldRunning.ID, "node-z"); err != nil {
			t.Fatal(err)
		}
		oldQueued := start(t, a, registerSpec, strings.ReplaceAll(registerManifest(3), "SN-", "SQ-"), mfg.FormatJSONL)
		if _, err := st.AcquireLease(ctx, "job:"+oldQueued.ID, "node-z", forever); err != nil {
			t.Fatal(err)
		}
		// A job that finished a day before the prune: recent.
		clock.Set(t0.Add(retention))
		recent := start(t, a, registerSpec, strings.ReplaceAll(registerManifest(3), "SN-", "SN2-"), mfg.FormatJSONL)
		a.runUntilFinished(t, recent.ID)
		clock.Set(t0.Add(retention + 24*time.Hour))

		// Another node holds the prune lease: nothing is deleted.
		other, err := st.AcquireLease(ctx, jobs.PruneLease, "node-c", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := a.runner.Prune(ctx); !errors.Is(err, lease.ErrHeld) || n != 0 {
			t.Fatalf("Prune under another node's lease = %d, %v; want 0, ErrHeld", n, err)
		}
		if _, err := st.GetJob(ctx, oldDone.ID); err != nil {
			t.Fatalf("pruned under another node's lease: %v", err)
		}
		if err := st.ReleaseLease(ctx, other); err != nil {
			t.Fatal(err)
		}

		// Two nodes prune at once: each old finished job goes once.
		var wg sync.WaitGroup
		var total atomic.Int64
		for _, n := range []*node{a, b} {
			wg.Go(func() {
				k, err := n.runner.Prune(ctx)
				if err != nil && !errors.Is(err, lease.ErrHeld) {
					t.Errorf("Prune: %v", err)
				}
				total.Add(int64(k))
			})
		}
		wg.Wait()
		if total.Load() != 2 {
			t.Fatalf("the nodes deleted %d jobs, want 2", total.Load())
		}
		want := []string{oldDone.ID, oldCancelled.ID}
		slices.Sort(want)
		if got := retentionDeletes(t, st); !slices.Equal(got, want) {
			t.Fatalf("audit log records retention deleting %v, want %v", got, want)
		}
		for _, id := range want {
			if _, err := st.GetJob(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("job %s after prune: %v", id, err)
			}
			if n := jobChunks(t, st, id); n != 0 {
				t.Fatalf("job %s has %d chunks left", id, n)
			}
		}
		for id, status := range map[string]string{oldRunning.ID: store.JobRunning, oldQueued.ID: store.JobQueued, recent.ID: store.JobDone} {
			j, err := st.GetJob(ctx, id)
			if err != nil {
				t.Fatalf("job %s was pruned: %v", id, err)
			}
			if j.Status != status {
				t.Fatalf("job %s is %s, want %s", id, j.Status, status)
			}
			if n := jobChunks(t, st, id); int64(n) != j.Chunks {
				t.Fatalf("job %s has %d of its %d chunks", id, n, j.Chunks)
			}
		}
		// The devices the jobs registered stay.
		if c := countDevices(t, st); c != rowsBig+3 {
			t.Fatalf("%d devices after prune, want %d", c, rowsBig+3)
		}

		// Again: nothing more to do.
		if n, err := b.runner.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("second Prune = %d, %v", n, err)
		}
		if got := retentionDeletes(t, st); len(got) != 2 {
			t.Fatalf("a second prune recorded deletes: %v", got)
		}

		// Without retention nothing is pruned, ever.
		clock.Set(t0.Add(10 * retention))
		keep := retentionNode(t, st, "node-k", clock, 0, 2)
		if n, err := keep.runner.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("Prune with no retention = %d, %v", n, err)
		}
		if _, err := st.GetJob(ctx, recent.ID); err != nil {
			t.Fatalf("pruned with no retention: %v", err)
		}
	})
}

// TestPruneLoop: a running runner prunes on its own, shortly after start.
func TestPruneLoop(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, err := store.Open(context.Background(), store.Config{URL: "sqlite://" + t.TempDir() + "/m.db", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	putTemplate(t, st, "sensor")
	n := retentionNode(t, st, "n", clock, time.Hour, 2)
	j := start(t, n, registerSpec, registerManifest(5), mfg.FormatJSONL)
	n.runUntilFinished(t, j.ID)
	clock.Set(clock.Now().Add(2 * time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := st.GetJob(ctx, j.ID); errors.Is(err, store.ErrNotFound) {
			return
		}
	}
	t.Fatal("the runner did not prune a job past retention")
}

// warnCounter counts log records with a given message and keeps the last
// "attempt" attribute seen.
type warnCounter struct {
	msg     string
	n       atomic.Int64
	attempt atomic.Int64
}

func (h *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *warnCounter) WithGroup(string) slog.Handler            { return h }
func (h *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "attempt" {
				h.attempt.Store(a.Value.Int64())
			}
			return true
		})
	}
	return nil
}

// TestChunkRetryAfterOutage: while the database refuses to commit any chunk
// the runner keeps retrying (backing off, counting attempts) and commits
// nothing; once it recovers the job completes with every row applied once.
func TestChunkRetryAfterOutage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		// The outage: a trigger refusing every chunk's commit.
		outage, recover := []string{"CREATE TRIGGER outage BEFORE UPDATE ON job_chunks BEGIN SELECT RAISE(ABORT, 'injected outage'); END"},
			[]string{"DROP TRIGGER outage"}
		if st.Backend() == "postgres" {
			outage = []string{"CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected outage'; END $$",
				"CREATE TRIGGER outage BEFORE UPDATE ON job_chunks FOR EACH ROW EXECUTE FUNCTION outage()"}
			recover = []string{"DROP TRIGGER outage ON job_chunks", "DROP FUNCTION outage()"}
		}
		exec := func(qs []string) {
			for _, q := range qs {
				if _, err := st.DB().Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		logs := &warnCounter{msg: "jobs: applying a chunk failed; retrying"}
		m, err := lease.New(lease.Config{Store: st, Node: "n", TTL: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cfg := jobs.Config{Store: st, ChunkRows: 4, Logger: slog.New(logs), RetryMin: time.Millisecond, RetryMax: 8 * time.Millisecond}
		n := &node{svc: jobs.NewService(cfg), runner: jobs.NewRunner(cfg, m, 20*time.Millisecond), wait: time.Minute}
		const rows = 10
		exec(outage)
		j := start(t, n, registerSpec, registerManifest(rows), mfg.FormatJSONL)

		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = n.runner.Run(runCtx) }()
		for deadline := time.Now().Add(time.Minute); logs.n.Load() < 5; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d retries logged", logs.n.Load())
			}
		}
		if got := logs.attempt.Load(); got < 5 {
			t.Fatalf("retry log says attempt %d after 5 retries", got)
		}
		if c := countDevices(t, st); c != 0 {
			t.Fatalf("%d devices committed during the outage", c)
		}
		if cur, err := st.GetJob(ctx, j.ID); err != nil || cur.Finished() || cur.ChunksDone != 0 {
			t.Fatalf("job during the outage: %+v, %v", cur, err)
		}
		exec(recover)
		cancel()
		<-done

		j = n.runUntilFinished(t, j.ID)
		if j.Status != store.JobDone || j.OK != rows || j.Errors != 0 || j.Unchanged != 0 {
			t.Fatalf("job after the outage: %+v", j)
		}
		if c := countDevices(t, st); c != rows {
			t.Fatalf("%d devices, want %d", c, rows)
		}
		rs := results(t, n, j.ID)
		if len(rs) != rows {
			t.Fatalf("%d results, want %d", len(rs), rows)
		}
		for i, r := range rs {
			if r.Row != int64(i+1) || r.Status != jobs.StatusOK {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	})
}
