package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// newQueuedJob stores a job with chunks of the given row counts and queues it.
func newQueuedJob(t *testing.T, s *Store, id string, chunkRows ...int64) *Job {
	t.Helper()
	ctx := context.Background()
	j := &Job{ID: id, Op: "register", Spec: []byte(`{"op":"register"}`), Format: "jsonl"}
	if err := s.CreateJob(ctx, j, "admin/test"); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	first := int64(1)
	for seq, n := range chunkRows {
		c := JobChunk{JobID: id, Seq: int64(seq), FirstRow: first, Rows: n, Data: []byte(fmt.Sprintf("chunk %d\n", seq))}
		if err := s.AddJobChunk(ctx, c); err != nil {
			t.Fatalf("AddJobChunk: %v", err)
		}
		first += n
	}
	q, err := s.QueueJob(ctx, id, "abc123")
	if err != nil {
		t.Fatalf("QueueJob: %v", err)
	}
	return q
}

// insertChunk is an apply function registering the given serials.
func insertChunk(s *Store, serials ...string) func(context.Context, *JobTx) (*JobChunkOutcome, error) {
	return func(ctx context.Context, tx *JobTx) (*JobChunkOutcome, error) {
		ds := make([]*fleet.Device, len(serials))
		for i, sn := range serials {
			ds[i] = newTestDevice(sn)
		}
		_, inserted, err := tx.InsertDevices(ctx, s.PrepareDevices(ds, "admin/test"))
		if err != nil {
			return nil, err
		}
		out := &JobChunkOutcome{Results: []byte(strings.Join(serials, ",") + "\n")}
		for _, ok := range inserted {
			if ok {
				out.OK++
			} else {
				out.Unchanged++
			}
		}
		return out, nil
	}
}

func countDevices(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow("SELECT COUNT(*) FROM devices").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJobLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		j := newQueuedJob(t, s, "job_1", 2, 2)
		if j.Status != JobQueued || j.Rows != 4 || j.Chunks != 2 || j.ManifestSHA256 != "abc123" || j.CreatedBy != "admin/test" {
			t.Fatalf("queued job: %+v", j)
		}
		if _, err := s.QueueJob(ctx, "job_1", "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("queueing a queued job: %v", err)
		}
		if err := s.AddJobChunk(ctx, JobChunk{JobID: "job_1", Seq: 9, Rows: 1, Data: []byte("x")}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("adding a chunk to a queued job: %v", err)
		}
		if run, err := s.RunnableJobs(ctx); err != nil || len(run) != 1 || run[0].ID != "job_1" {
			t.Fatalf("RunnableJobs: %v, %v", run, err)
		}
		l, err := s.AcquireLease(ctx, "job:job_1", "node-a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if j, err = s.StartJob(ctx, l, "job_1", "node-a"); err != nil || j.Status != JobRunning || j.Node != "node-a" || j.StartedAt == nil {
			t.Fatalf("StartJob: %+v, %v", j, err)
		}

		c, err := s.NextJobChunk(ctx, "job_1", -1)
		if err != nil || c == nil || c.Seq != 0 || c.FirstRow != 1 || c.Rows != 2 || string(c.Data) != "chunk 0\n" {
			t.Fatalf("NextJobChunk: %+v, %v", c, err)
		}
		if err := s.ApplyJobChunk(ctx, l, "job_1", 0, "admin/test", insertChunk(s, "A1", "A2")); err != nil {
			t.Fatalf("ApplyJobChunk: %v", err)
		}
		// Applying it again changes nothing: it is done.
		if err := s.ApplyJobChunk(ctx, l, "job_1", 0, "admin/test", insertChunk(s, "A3")); !errors.Is(err, ErrJobChunkDone) {
			t.Fatalf("applying a done chunk: %v, want ErrJobChunkDone", err)
		}
		if n := countDevices(t, s); n != 2 {
			t.Fatalf("%d devices after one chunk, want 2", n)
		}
		// A failing apply writes nothing, its devices included.
		boom := errors.New("boom")
		err = s.ApplyJobChunk(ctx, l, "job_1", 1, "admin/test", func(ctx context.Context, tx *JobTx) (*JobChunkOutcome, error) {
			if _, err := insertChunk(s, "B1")(ctx, tx); err != nil {
				return nil, err
			}
			return nil, boom
		})
		if !errors.Is(err, boom) || countDevices(t, s) != 2 {
			t.Fatalf("failed apply: %v, %d devices", err, countDevices(t, s))
		}
		// A node that lost the lease cannot commit.
		stale := *l
		stale.Token--
		if err := s.ApplyJobChunk(ctx, &stale, "job_1", 1, "admin/test", insertChunk(s, "B1")); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("apply with a stale lease: %v, want ErrLeaseLost", err)
		}
		if _, err := s.FinishJob(ctx, &stale, "job_1"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("finish with a stale lease: %v, want ErrLeaseLost", err)
		}
		if c, _ := s.NextJobChunk(ctx, "job_1", -1); c == nil || c.Seq != 1 {
			t.Fatalf("next chunk after chunk 0: %+v", c)
		}
		// Not done yet: FinishJob leaves it running.
		if j, err = s.FinishJob(ctx, l, "job_1"); err != nil || j.Status != JobRunning {
			t.Fatalf("early FinishJob: %+v, %v", j, err)
		}
		if err := s.ApplyJobChunk(ctx, l, "job_1", 1, "admin/test", insertChunk(s, "A2", "B1")); err != nil {
			t.Fatal(err)
		}
		if c, err := s.NextJobChunk(ctx, "job_1", -1); c != nil || err != nil {
			t.Fatalf("NextJobChunk when all are done: %+v, %v", c, err)
		}
		if j, err = s.FinishJob(ctx, l, "job_1"); err != nil || j.Status != JobDone || j.FinishedAt == nil ||
			j.ChunksDone != 2 || j.OK != 3 || j.Unchanged != 1 || j.Errors != 0 {
			t.Fatalf("finished job: %+v, %v", j, err)
		}
		var results []string
		if err := s.EachJobResults(ctx, "job_1", func(b []byte) error { results = append(results, string(b)); return nil }); err != nil {
			t.Fatal(err)
		}
		if strings.Join(results, "") != "A1,A2\nA2,B1\n" {
			t.Fatalf("results %q", results)
		}
		if run, _ := s.RunnableJobs(ctx); len(run) != 0 {
			t.Fatalf("a done job is runnable: %+v", run)
		}
		// Cancelling a finished job changes nothing.
		if j, err = s.CancelJob(ctx, "job_1", "admin/a", ""); err != nil || j.Status != JobDone || j.CancelRequested {
			t.Fatalf("cancelling a done job: %+v, %v", j, err)
		}
		if _, err := s.CancelJob(ctx, "job_nope", "admin/a", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cancelling an unknown job: %v", err)
		}
		if _, err := s.GetJob(ctx, "job_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetJob of an unknown job: %v", err)
		}
	})
}

func TestJobCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// A queued job is cancelled at once.
		newQueuedJob(t, s, "job_q", 1)
		j, err := s.CancelJob(ctx, "job_q", "operator/o", "wrong manifest")
		if err != nil || j.Status != JobCancelled || !j.CancelRequested || j.FinishedAt == nil {
			t.Fatalf("cancelled queued job: %+v, %v", j, err)
		}
		// A running one refuses every chunk from then on and finishes cancelled.
		newQueuedJob(t, s, "job_r", 1, 1)
		l, _ := s.AcquireLease(ctx, "job:job_r", "n", time.Minute)
		if _, err := s.StartJob(ctx, l, "job_r", "n"); err != nil {
			t.Fatal(err)
		}
		if err := s.ApplyJobChunk(ctx, l, "job_r", 0, "t", insertChunk(s, "C1")); err != nil {
			t.Fatal(err)
		}
		if j, err = s.CancelJob(ctx, "job_r", "admin/a", ""); err != nil || j.Status != JobRunning || !j.CancelRequested {
			t.Fatalf("cancelled running job: %+v, %v", j, err)
		}
		// Each cancel that stopped a job is in the fleet audit log, with
		// its caller and reason; asking again records nothing more.
		if _, err := s.CancelJob(ctx, "job_q", "admin/a", "again"); err != nil {
			t.Fatal(err)
		}
		var cancels []fleet.Event
		log, err := s.History(ctx, fleet.FleetSubject)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range log {
			if e.Type == fleet.EventJobCancelled {
				cancels = append(cancels, e)
			}
		}
		if len(cancels) != 2 || cancels[0].Actor != "operator/o" || !strings.Contains(string(cancels[0].Data), `"reason":"wrong manifest"`) || cancels[1].Actor != "admin/a" {
			t.Fatalf("audit log of cancels: %+v", cancels)
		}
		if err := s.ApplyJobChunk(ctx, l, "job_r", 1, "t", insertChunk(s, "C2")); !errors.Is(err, ErrJobCancelled) {
			t.Fatalf("chunk after cancel: %v, want ErrJobCancelled", err)
		}
		if j, err = s.FinishJob(ctx, l, "job_r"); err != nil || j.Status != JobCancelled || j.ChunksDone != 1 {
			t.Fatalf("finished cancelled job: %+v, %v", j, err)
		}
		if n := countDevices(t, s); n != 1 {
			t.Fatalf("%d devices, want the 1 applied before the cancel", n)
		}
		if jobs, err := s.ListJobs(ctx, JobCancelled, "", 10); err != nil || len(jobs) != 2 || jobs[0].ID != "job_r" {
			t.Fatalf("ListJobs(cancelled): %+v, %v", jobs, err)
		}
		if jobs, err := s.ListJobs(ctx, "", "job_r", 10); err != nil || len(jobs) != 1 || jobs[0].ID != "job_q" {
			t.Fatalf("ListJobs(before job_r): %+v, %v", jobs, err)
		}
	})
}

func TestJobUploadCleanup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return now }
		j := &Job{ID: "job_u", Op: "update", Spec: []byte(`{}`), Format: "csv"}
		if err := s.CreateJob(ctx, j, "t"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateJob(ctx, &Job{ID: "job_u", Op: "update", Spec: []byte(`{}`), Format: "csv"}, "t"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("duplicate job id: %v", err)
		}
		if err := s.AddJobChunk(ctx, JobChunk{JobID: "job_u", Seq: 0, FirstRow: 1, Rows: 5, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if run, _ := s.RunnableJobs(ctx); len(run) != 0 {
			t.Fatal("an uploading job is runnable")
		}
		if ids, err := s.StaleUploads(ctx, now.Add(-time.Minute)); err != nil || len(ids) != 0 {
			t.Fatalf("fresh upload counted stale: %v %v", ids, err)
		}
		if ids, err := s.StaleUploads(ctx, now.Add(time.Minute)); err != nil || len(ids) != 1 {
			t.Fatalf("StaleUploads: %v %v", ids, err)
		}
		if err := s.DeleteJob(ctx, "job_u"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJob(ctx, "job_u"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted job: %v", err)
		}
		var chunks int
		if err := s.r.QueryRow("SELECT COUNT(*) FROM job_chunks").Scan(&chunks); err != nil || chunks != 0 {
			t.Fatalf("%d chunks left, %v", chunks, err)
		}
	})
}

// TestJobChunkExactlyOnce has several workers race to apply the same chunk,
// as two nodes might around a lease takeover: one applies it, the others
// find it done, and its devices exist once.
func TestJobChunkExactlyOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newQueuedJob(t, s, "job_x", 3)
		l, _ := s.AcquireLease(ctx, "job:job_x", "n", time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- s.ApplyJobChunk(ctx, l, "job_x", 0, "t", insertChunk(s, "X1", "X2", "X3")) })
		}
		wg.Wait()
		close(errs)
		applied := 0
		for err := range errs {
			switch {
			case err == nil:
				applied++
			case !errors.Is(err, ErrJobChunkDone):
				t.Fatalf("racing apply: %v", err)
			}
		}
		j, _ := s.GetJob(ctx, "job_x")
		if applied != 1 || j.OK != 3 || j.ChunksDone != 1 || countDevices(t, s) != 3 {
			t.Fatalf("applied %d times; job %+v; %d devices", applied, j, countDevices(t, s))
		}
	})
}

func TestJobTxDevices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		old := newTestDevice("OLD-1")
		if err := s.CreateDevice(ctx, old, "t"); err != nil {
			t.Fatal(err)
		}
		newQueuedJob(t, s, "job_d", 1)
		l, _ := s.AcquireLease(ctx, "job:job_d", "n", time.Minute)
		err := s.ApplyJobChunk(ctx, l, "job_d", 0, "admin/job", func(ctx context.Context, tx *JobTx) (*JobChunkOutcome, error) {
			bad := newTestDevice("") // no serial
			p := s.PrepareDevices([]*fleet.Device{newTestDevice("NEW-1"), newTestDevice("OLD-1"), bad, newTestDevice("NEW-1")}, "admin/job")
			if p.Err(0) != nil || p.Err(2) == nil {
				t.Errorf("prepare errors: %v, %v", p.Err(0), p.Err(2))
			}
			out, inserted, err := tx.InsertDevices(ctx, p)
			if err != nil {
				return nil, err
			}
			if !inserted[0] || inserted[1] || inserted[2] || inserted[3] {
				t.Errorf("inserted %v, want only the first", inserted)
			}
			if out[1].ID != old.ID || out[2] != nil || out[3].ID != out[0].ID {
				t.Errorf("records: existing %v, invalid %v, repeated %v (first %v)", out[1], out[2], out[3], out[0])
			}
			devs, err := tx.Devices(ctx, []DeviceRef{{ID: old.ID}, {Factory: "f1", Model: "m1", Serial: "NEW-1"}, {ID: "dev_nope"}, {Factory: "f1", Model: "m1", Serial: "NOPE"}})
			if err != nil {
				return nil, err
			}
			if devs[0] == nil || devs[0].ID != old.ID || devs[1] == nil || devs[1].ID != out[0].ID || devs[2] != nil || devs[3] != nil {
				t.Errorf("Devices: %v", devs)
			}
			if _, err := tx.UpdateDevice(ctx, old.ID, func(d *fleet.Device) (*Change, error) {
				d.Inventory.Owner = "new-owner"
				return &Change{Type: fleet.EventUpdated, Data: map[string]string{"owner": "new-owner"}}, nil
			}); err != nil {
				return nil, err
			}
			if n, err := tx.RevokeDeviceCertificates(ctx, old.ID, 0); err != nil || n != 0 {
				t.Errorf("revoke without certificates: %d, %v", n, err)
			}
			if _, err := tx.RevokeDeviceCertificates(ctx, old.ID, 99); err == nil {
				t.Error("an invalid revocation reason was accepted")
			}
			return &JobChunkOutcome{Results: []byte("r\n"), OK: 1}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.GetDevice(ctx, old.ID)
		if err != nil || d.Inventory.Owner != "new-owner" || d.Version != 2 {
			t.Fatalf("updated device: %+v, %v", d, err)
		}
		if n := countDevices(t, s); n != 2 {
			t.Fatalf("%d devices, want 2", n)
		}
	})
}

// TestPurgeJob: a finished job goes with its manifest and results, and the
// fleet audit log says who deleted it; the devices it registered stay. An
// unfinished job is refused and kept.
func TestPurgeJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		newQueuedJob(t, s, "job_p", 1)
		l, _ := s.AcquireLease(ctx, "job:job_p", "n", time.Minute)
		if _, err := s.StartJob(ctx, l, "job_p", "n"); err != nil {
			t.Fatal(err)
		}
		if err := s.PurgeJob(ctx, "job_p", "admin/a"); !errors.Is(err, ErrJobUnfinished) {
			t.Fatalf("purge a running job: %v, want ErrJobUnfinished", err)
		}
		if err := s.ApplyJobChunk(ctx, l, "job_p", 0, "t", insertChunk(s, "P1")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishJob(ctx, l, "job_p"); err != nil {
			t.Fatal(err)
		}
		if err := s.PurgeJob(ctx, "job_p", "operator/o"); err != nil {
			t.Fatalf("purge a done job: %v", err)
		}
		if _, err := s.GetJob(ctx, "job_p"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the purged job: %v, want ErrNotFound", err)
		}
		var chunks int
		if err := s.r.QueryRowContext(ctx, s.d.rebind("SELECT COUNT(*) FROM job_chunks WHERE job_id = ?"), "job_p").Scan(&chunks); err != nil || chunks != 0 {
			t.Fatalf("chunks left after purge: %d, %v", chunks, err)
		}
		if n := countDevices(t, s); n != 1 {
			t.Fatalf("devices after purge = %d, want the one the job registered", n)
		}
		log, err := s.History(ctx, fleet.FleetSubject)
		if err != nil {
			t.Fatal(err)
		}
		last := log[len(log)-1]
		if last.Type != fleet.EventJobDeleted || last.Actor != "operator/o" || !strings.Contains(string(last.Data), `"id":"job_p"`) {
			t.Fatalf("last audit event = %+v", last)
		}
		if err := s.PurgeJob(ctx, "job_p", "operator/o"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purge it again: %v, want ErrNotFound", err)
		}
	})
}

// finishJobChunks applies every chunk of queued job id (no device writes)
// and finishes it, at the store's current clock.
func finishJobChunks(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	l, err := s.AcquireLease(ctx, "job:"+id, "n", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.StartJob(ctx, l, id, "n")
	if err != nil {
		t.Fatal(err)
	}
	for seq := range j.Chunks {
		if err := s.ApplyJobChunk(ctx, l, id, seq, "t", func(context.Context, *JobTx) (*JobChunkOutcome, error) {
			return &JobChunkOutcome{Results: []byte("{}\n"), OK: 1}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if j, err := s.FinishJob(ctx, l, id); err != nil || j.Status != JobDone {
		t.Fatalf("FinishJob: %+v, %v", j, err)
	}
	if err := s.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
}

func countJobChunks(t *testing.T, s *Store, id string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow(s.d.rebind("SELECT COUNT(*) FROM job_chunks WHERE job_id = ?"), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJobRetentionStore: FinishedJobsBefore lists only finished jobs that
// finished before the cutoff, and PurgeJobChunks deletes a finished job's
// chunks a bounded batch at a time while refusing unfinished jobs.
func TestJobRetentionStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		now := t0
		s.now = func() time.Time { return now }

		// Old: a done job with more chunks than a purge batch, a job
		// cancelled while queued, a job still running, a queued one.
		big := make([]int64, PurgeBatchChunks*2+5)
		for i := range big {
			big[i] = 1
		}
		newQueuedJob(t, s, "job_old_done", big...)
		finishJobChunks(t, s, "job_old_done")
		newQueuedJob(t, s, "job_old_cancelled", 1, 1)
		if _, err := s.CancelJob(ctx, "job_old_cancelled", "admin/a", ""); err != nil {
			t.Fatal(err)
		}
		newQueuedJob(t, s, "job_old_running", 1, 1)
		l, _ := s.AcquireLease(ctx, "job:job_old_running", "n", time.Minute)
		if _, err := s.StartJob(ctx, l, "job_old_running", "n"); err != nil {
			t.Fatal(err)
		}
		newQueuedJob(t, s, "job_old_queued", 1)
		// Recent: done well after the cutoff.
		now = t0.Add(20 * 24 * time.Hour)
		newQueuedJob(t, s, "job_recent", 1)
		finishJobChunks(t, s, "job_recent")

		ids, err := s.FinishedJobsBefore(ctx, t0.Add(10*24*time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"job_old_cancelled", "job_old_done"}) {
			t.Fatalf("FinishedJobsBefore = %v, want the old done and cancelled jobs only", ids)
		}
		if ids, err := s.FinishedJobsBefore(ctx, t0.Add(10*24*time.Hour), 1); err != nil || len(ids) != 1 {
			t.Fatalf("FinishedJobsBefore with limit 1 = %v, %v", ids, err)
		}

		// Unfinished jobs are refused and keep every chunk.
		for _, id := range []string{"job_old_running", "job_old_queued"} {
			if _, err := s.PurgeJobChunks(ctx, id, 10); !errors.Is(err, ErrJobUnfinished) {
				t.Fatalf("PurgeJobChunks(%s) = %v, want ErrJobUnfinished", id, err)
			}
			if err := s.PurgeJob(ctx, id, "admin/a"); !errors.Is(err, ErrJobUnfinished) {
				t.Fatalf("PurgeJob(%s) = %v, want ErrJobUnfinished", id, err)
			}
		}
		if n := countJobChunks(t, s, "job_old_running"); n != 2 {
			t.Fatalf("running job has %d chunks after a refused purge, want 2", n)
		}
		if _, err := s.PurgeJobChunks(ctx, "job_nope", 10); !errors.Is(err, ErrNotFound) {
			t.Fatalf("PurgeJobChunks(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.PurgeJobChunks(ctx, "job_old_done", 0); err == nil {
			t.Fatal("PurgeJobChunks with limit 0 succeeded")
		}

		// A batch deletes at most its limit and leaves the job.
		if n, err := s.PurgeJobChunks(ctx, "job_old_done", 3); err != nil || n != 3 {
			t.Fatalf("PurgeJobChunks(3) = %d, %v", n, err)
		}
		if n := countJobChunks(t, s, "job_old_done"); n != len(big)-3 {
			t.Fatalf("%d chunks left after a batch of 3, want %d", n, len(big)-3)
		}
		if _, err := s.GetJob(ctx, "job_old_done"); err != nil {
			t.Fatalf("the job went with its first batch: %v", err)
		}
		// PurgeJob finishes an interrupted purge, in several batches.
		if err := s.PurgeJob(ctx, "job_old_done", "system/retention"); err != nil {
			t.Fatal(err)
		}
		if n := countJobChunks(t, s, "job_old_done"); n != 0 {
			t.Fatalf("%d chunks left after PurgeJob", n)
		}
		if _, err := s.GetJob(ctx, "job_old_done"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purged job: %v", err)
		}
		log, err := s.History(ctx, fleet.FleetSubject)
		if err != nil {
			t.Fatal(err)
		}
		deleted := 0
		for _, e := range log {
			if e.Type == fleet.EventJobDeleted {
				deleted++
				if e.Actor != "system/retention" || !strings.Contains(string(e.Data), `"id":"job_old_done"`) {
					t.Fatalf("audit event = %+v", e)
				}
			}
		}
		if deleted != 1 {
			t.Fatalf("%d job.deleted events, want 1", deleted)
		}
	})
}
