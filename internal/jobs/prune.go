package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/store"
)

// Retention of finished jobs.
const (
	// PruneLease is the lease a node holds while it deletes finished jobs
	// past their retention, so one node of several does it at a time.
	PruneLease = "jobs-prune"
	// RetentionActor is who the fleet audit log says deleted a job that
	// retention removed.
	RetentionActor = "system/retention"
	// DefaultRetention is how long `muster serve` keeps finished jobs.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultPruneEvery is how often a runner looks for jobs past
	// retention.
	DefaultPruneEvery = time.Hour
	// pruneFirst is how soon after start a runner first looks: soon, so a
	// node restarted more often than hourly still prunes, but not in the
	// middle of the start-up.
	pruneFirst = time.Minute
	// pruneList is how many job ids one listing returns.
	pruneList = 100
)

// Prune deletes, under PruneLease, every finished (done or cancelled) job
// that finished more than Config.Retention ago, each recorded in the fleet
// audit log as deleted by RetentionActor, and returns how many it deleted.
// Queued and running jobs are never deleted. It returns lease.ErrHeld,
// having deleted nothing, when another node is pruning. With no retention
// configured it does nothing.
func (r *Runner) Prune(ctx context.Context) (int, error) {
	if r.cfg.Retention <= 0 {
		return 0, nil
	}
	held, err := r.leases.TryAcquire(ctx, PruneLease)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := held.Release(context.WithoutCancel(ctx)); err != nil {
			r.cfg.Logger.WarnContext(ctx, "jobs: releasing the prune lease failed", "err", err)
		}
	}()
	// Deletion is not fenced by the lease: deleting a finished job twice
	// is harmless (the second finds nothing), so the lease only keeps
	// nodes from doing the same work at once. Its context still stops
	// the work when renewal fails.
	ctx = held.Context()
	cutoff := r.cfg.Now().Add(-r.cfg.Retention)
	deleted := 0
	for {
		ids, err := r.cfg.Store.FinishedJobsBefore(ctx, cutoff, pruneList)
		if err != nil {
			return deleted, err
		}
		for _, id := range ids {
			switch err := r.cfg.Store.PurgeJob(ctx, id, RetentionActor); {
			case errors.Is(err, store.ErrNotFound):
				// Deleted by hand meanwhile.
			case err != nil:
				return deleted, err
			default:
				deleted++
				r.cfg.Logger.InfoContext(ctx, "jobs: deleted a finished job past retention", "job", id, "retention", r.cfg.Retention)
			}
		}
		if len(ids) < pruneList {
			return deleted, nil
		}
	}
}

// pruneLoop prunes shortly after start and then every Config.PruneEvery
// until ctx is cancelled.
func (r *Runner) pruneLoop(ctx context.Context) {
	t := time.NewTimer(min(pruneFirst, r.cfg.PruneEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.Prune(ctx)
		switch {
		case errors.Is(err, lease.ErrHeld):
			r.cfg.Logger.DebugContext(ctx, "jobs: another node is pruning finished jobs")
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.WarnContext(ctx, "jobs: pruning finished jobs failed; trying again later", "deleted", n, "err", err)
		case n > 0:
			r.cfg.Logger.InfoContext(ctx, "jobs: pruned finished jobs past retention", "deleted", n, "retention", r.cfg.Retention)
		}
		t.Reset(r.cfg.PruneEvery)
	}
}
