package audit

import (
	"context"
	"errors"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// SlotOf is the schedule slot a time falls in: the start of its interval,
// counted from the Unix epoch, so every node computes the same slots.
func SlotOf(t time.Time, every time.Duration) string {
	return "scheduled:" + t.UTC().Truncate(every).Format(time.RFC3339)
}

// RunSchedule runs every check once per interval until ctx ends. Several
// nodes sharing a database may all run it: each run claims its interval's
// slot in the store, and a node that finds the slot taken skips it, so
// exactly one node audits each interval. A node that starts in an interval
// nobody audited yet audits it at once.
func (r *Runner) RunSchedule(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return errors.New("audit: the schedule interval must be positive")
	}
	// Check for a new slot a few times per interval, at most once a minute.
	tick := time.NewTicker(min(every/4+time.Second, time.Minute))
	defer tick.Stop()
	// A run cut short because the schedule ends is recorded failed with
	// ErrStopping, like a background run that Stop cancels.
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() { cancel(ErrStopping) })()
	last := ""
	for {
		if slot := SlotOf(r.now(), every); slot != last && r.runSlot(runCtx, slot) {
			last = slot
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// runSlot runs the audit of one slot unless another node took it. It
// reports whether the slot is settled: false when an audit asked for on
// demand was running on this node, so the slot is tried again at the next
// tick.
func (r *Runner) runSlot(ctx context.Context, slot string) bool {
	_, err := r.Run(ctx, Request{Actor: "schedule", Kind: store.AuditScheduled, Slot: slot})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrDuplicate):
		r.log.DebugContext(ctx, "audit: slot audited by another node", "slot", slot)
	case errors.Is(err, ErrBusy):
		r.log.InfoContext(ctx, "audit: scheduled run waits for the audit running on this node", "slot", slot)
		return false
	case ctx.Err() != nil, errors.Is(err, ErrStopping):
	default:
		// A failed run took its slot; the next slot runs as usual.
		r.log.ErrorContext(ctx, "audit: scheduled run failed", "slot", slot, "err", err)
	}
	return true
}
