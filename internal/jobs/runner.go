package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/store"
)

// Runner timings.
const (
	// DefaultPoll is how often an idle runner looks for runnable jobs.
	DefaultPoll = time.Second
	// staleUpload is how long an upload may go without a chunk before a
	// runner removes it: its client or its node is gone.
	staleUpload = 10 * time.Minute
	// DefaultRetryMin and DefaultRetryMax bound the pause before a chunk
	// that failed (not a row: the database, say) is tried again. Nothing
	// is skipped, so the job waits for the database; the pause doubles so
	// that a long outage is neither hammered nor logged every second.
	DefaultRetryMin = time.Second
	DefaultRetryMax = time.Minute
)

// retryDelay is the pause before retry number attempt (1 for the first) of
// a failed chunk: lo doubled attempt-1 times, never more than hi.
func retryDelay(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Runner applies jobs on this node. Every node runs one; a job runs on the
// node holding its lease ("job:<id>"), and when that node dies its lease
// expires and another node's runner takes the job over where the last
// committed chunk left it.
type Runner struct {
	cfg    Config
	leases *lease.Manager
	poll   time.Duration
	wake   chan struct{}
}

// NewRunner returns a runner taking jobs through leases; poll is how often
// it looks for work (DefaultPoll when zero).
func NewRunner(cfg Config, leases *lease.Manager, poll time.Duration) *Runner {
	if poll <= 0 {
		poll = DefaultPoll
	}
	return &Runner{cfg: cfg.withDefaults(), leases: leases, poll: poll, wake: make(chan struct{}, 1)}
}

// Wake makes the runner look for jobs now instead of at its next poll.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run takes and applies jobs until ctx is cancelled and, with
// Config.Retention set, deletes finished jobs past it (see Prune) shortly
// after start and every Config.PruneEvery. Failures are logged and
// retried; Run returns only ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.Retention > 0 {
		pruned := make(chan struct{})
		defer func() { <-pruned }()
		go func() {
			defer close(pruned)
			r.pruneLoop(ctx)
		}()
	}
	t := time.NewTicker(r.poll)
	defer t.Stop()
	var lastSweep time.Time
	for {
		if time.Since(lastSweep) > time.Minute {
			r.sweepUploads(ctx)
			lastSweep = time.Now()
		}
		r.runAvailable(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-r.wake:
		}
	}
}

// runAvailable runs, one after the other, every runnable job whose lease
// this node can take.
func (r *Runner) runAvailable(ctx context.Context) {
	jobs, err := r.cfg.Store.RunnableJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "jobs: listing runnable jobs failed", "err", err)
		}
		return
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		held, err := r.leases.TryAcquire(ctx, "job:"+j.ID)
		if errors.Is(err, lease.ErrHeld) {
			continue
		}
		if err != nil {
			r.cfg.Logger.WarnContext(ctx, "jobs: taking a job's lease failed", "job", j.ID, "err", err)
			continue
		}
		if err := r.run(held, j.ID); err != nil && ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "jobs: job stopped; it resumes on the next look", "job", j.ID, "err", err)
		}
		if err := held.Release(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "jobs: releasing a job's lease failed", "job", j.ID, "err", err)
		}
	}
}

// run applies job id's remaining chunks under held.
func (r *Runner) run(held *lease.Held, id string) error {
	ctx, l := held.Context(), held.Lease()
	st := r.cfg.Store
	job, err := st.StartJob(ctx, l, id, r.leases.Node())
	if err != nil || job.Status != store.JobRunning {
		return err
	}
	var spec Spec
	if err := json.Unmarshal(job.Spec, &spec); err != nil {
		return fmt.Errorf("jobs: job %s has an unreadable spec: %w", id, err)
	}
	a, err := newApplier(ctx, st, spec, job.CreatedBy, r.cfg.Now)
	if err != nil {
		return err
	}
	a.jobID = id
	log := r.cfg.Logger.With("job", id, "node", r.leases.Node(), "lease_token", l.Token)
	log.InfoContext(ctx, "job running", "op", job.Op, "rows", job.Rows, "chunks_done", job.ChunksDone, "chunks", job.Chunks)
	after := int64(-1)
	failures := 0 // consecutive failed attempts without a chunk committed
	for {
		next, err := r.applyFrom(ctx, l, a, id, after)
		if next != after && failures > 0 {
			log.InfoContext(ctx, "jobs: applying chunks again", "after_failures", failures)
			failures = 0
		}
		after = next
		switch {
		case err == nil, errors.Is(err, store.ErrJobCancelled):
			job, err := st.FinishJob(ctx, l, id)
			if err != nil {
				return err
			}
			log.InfoContext(ctx, "job finished", "status", job.Status, "ok", job.OK, "unchanged", job.Unchanged, "errors", job.Errors)
			return nil
		case errors.Is(err, store.ErrLeaseLost), ctx.Err() != nil:
			return err
		}
		failures++
		wait := retryDelay(failures, r.cfg.RetryMin, r.cfg.RetryMax)
		// One line per attempt: the pauses double, so a long outage logs
		// about once a minute, not once a second.
		log.WarnContext(ctx, "jobs: applying a chunk failed; retrying", "after_chunk", after, "attempt", failures, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// prepared is a chunk read and prepared ahead of its transaction.
type prepared struct {
	seq int64
	w   *work
	err error
}

// applyFrom applies the chunks after seq after, one transaction each,
// while the next chunk is read and prepared on another goroutine. It
// returns the last chunk it got past and nil when none is left.
func (r *Runner) applyFrom(ctx context.Context, l *store.Lease, a *applier, id string, after int64) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan prepared, 1)
	go func() {
		defer close(ready)
		for seq := after; ; {
			c, err := r.cfg.Store.NextJobChunk(ctx, id, seq)
			if err != nil || c == nil {
				if err != nil {
					select {
					case ready <- prepared{err: err}:
					case <-ctx.Done():
					}
				}
				return
			}
			p := prepared{seq: c.Seq}
			rows, err := decodeRows(c.Data)
			if err != nil {
				p.err = err
			} else {
				p.w = a.prepare(rows, c.FirstRow)
			}
			select {
			case ready <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				return
			}
			seq = c.Seq
		}
	}()
	for p := range ready {
		if p.err != nil {
			return after, p.err
		}
		err := r.cfg.Store.ApplyJobChunk(ctx, l, id, p.seq, a.actor, func(ctx context.Context, tx *store.JobTx) (*store.JobChunkOutcome, error) {
			return a.apply(ctx, tx, p.w)
		})
		if err != nil && !errors.Is(err, store.ErrJobChunkDone) {
			return after, err
		}
		after = p.seq
	}
	return after, ctx.Err()
}

// sweepUploads removes uploads abandoned by their client or node.
func (r *Runner) sweepUploads(ctx context.Context) {
	ids, err := r.cfg.Store.StaleUploads(ctx, r.cfg.Now().Add(-staleUpload))
	if err != nil {
		return
	}
	for _, id := range ids {
		if err := r.cfg.Store.DeleteJob(ctx, id); err == nil {
			r.cfg.Logger.InfoContext(ctx, "jobs: removed an abandoned upload", "job", id)
		}
	}
}
