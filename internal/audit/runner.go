package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Errors callers compare with errors.Is.
var (
	// ErrUnknownCheck means a request named a check that does not exist.
	ErrUnknownCheck = errors.New("unknown audit check")
	// ErrBusy means this node is running an audit already; errors.As
	// with *BusyError names the run.
	ErrBusy = errors.New("an audit is running on this node already; wait for it to finish")
	// ErrStopping is why runs cancelled by Stop failed, and what Start
	// answers once the node is stopping.
	ErrStopping = errors.New("node stopping")
)

// BusyError is ErrBusy naming the run that holds this node.
type BusyError struct {
	// RunID is the run in progress on this node.
	RunID string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("audit run %s is running on this node; wait for it to finish", e.RunID)
}

// Is makes a BusyError match ErrBusy.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// All returns every check, in the order runs report them.
func All() []Check {
	return []Check{
		checkCertShared(), checkCertCloned(), checkCAExpiring(), checkCertExpiring(), checkRevokedConnecting(),
		checkBirthAfterProvisioning(), checkWeakKey(), checkTopicPolicy(), checkVulnerable(), checkNotSeen(),
		checkCertTooOld(), checkClientIDConflict(), checkHistoryBroken(), checkMeteringOff(),
	}
}

// CheckIDs returns the ids of every check.
func CheckIDs() []string {
	var ids []string
	for _, c := range All() {
		ids = append(ids, c.ID)
	}
	return ids
}

// Config configures a Runner.
type Config struct {
	// Store is required.
	Store Store
	// Params are the checks' thresholds; zero fields take the defaults.
	Params Params
	// Node names this node in the runs it records.
	Node string
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
	// ProgressEvery is how often a run records its progress while it
	// changes; zero means every second. Progress is recorded at these
	// intervals rather than per item so a run over millions of rows
	// adds a few writes, not millions.
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// defaultProgressEvery is how often runs record progress by default.
const defaultProgressEvery = time.Second

// Runner runs audits and records them. One node runs one audit at a time,
// scheduled or on demand; a run started with Start runs in the background
// until it ends or Stop cancels it.
type Runner struct {
	st            Store
	p             Params
	node          string
	now           func() time.Time
	progressEvery time.Duration
	log           *slog.Logger

	// bg is the context of background runs; stop cancels it with
	// ErrStopping.
	bg   context.Context
	stop context.CancelCauseFunc
	// runs counts the runs in progress, background or not, so Stop can
	// wait for them to be recorded.
	runs sync.WaitGroup

	mu      sync.Mutex
	running string // id of the run in progress on this node; "" when idle
	// ending is set while the run in progress records how it ended; idle
	// is closed when it has. A run asked for then waits instead of being
	// refused: whoever saw the run done in the store must be able to
	// start the next one.
	ending  bool
	idle    chan struct{}
	stopped bool
}

// endingWait bounds how long a run asked for waits for the run in
// progress to finish recording its end before it is refused.
const endingWait = 5 * time.Second

// New returns a Runner for cfg.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: a store is required")
	}
	p, err := cfg.Params.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.ProgressEvery < 0 {
		return nil, errors.New("audit: the progress interval must not be negative")
	}
	r := &Runner{st: cfg.Store, p: p, node: cfg.Node, now: cfg.Now, progressEvery: cfg.ProgressEvery, log: cfg.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.progressEvery == 0 {
		r.progressEvery = defaultProgressEvery
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.bg, r.stop = context.WithCancelCause(context.Background())
	return r, nil
}

// Params returns the thresholds the runner uses, defaults filled in.
func (r *Runner) Params() Params { return r.p }

// Request asks for one run.
type Request struct {
	// Checks are the ids to run; empty means all.
	Checks []string
	Actor  string
	// Kind is store.AuditManual (default) or store.AuditScheduled, and
	// Slot the interval a scheduled run is for.
	Kind string
	Slot string
}

// Run runs the requested checks and records the run with its findings,
// returning when the run ends. A check that fails fails the run: the run
// is recorded as failed and the findings are left as they were, so a
// partial run never resolves what it did not look at. Stop cancels it
// like a background run.
func (r *Runner) Run(ctx context.Context, req Request) (*store.AuditRun, error) {
	run, checks, err := r.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	defer r.end()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(r.bg, func() { cancel(context.Cause(r.bg)) })()
	return r.execute(ctx, run, checks)
}

// Start records a run as running and runs it in the background, on a
// context of the runner's own rather than ctx (which only bounds
// recording the start), so the run outlives the request that asked for
// it. It returns the run as recorded; AuditRun in the store follows it
// from there. Unknown checks are refused before anything is recorded.
func (r *Runner) Start(ctx context.Context, req Request) (*store.AuditRun, error) {
	run, checks, err := r.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	started := *run
	started.Checks = slices.Clone(run.Checks)
	go func() {
		defer r.end()
		_, err := r.execute(r.bg, run, checks)
		switch {
		case errors.Is(err, ErrStopping):
			r.log.Info("audit: run cancelled: node stopping", "run", run.ID)
		case err != nil:
			r.log.Error("audit: run failed", "run", run.ID, "err", err)
		}
	}()
	return &started, nil
}

// Stop cancels the runs in progress on this node, which are recorded
// failed with ErrStopping as the reason, refuses new ones, and waits
// until the runs are recorded or ctx ends.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.stop(ErrStopping)
	done := make(chan struct{})
	go func() {
		r.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: runs still stopping: %w", ctx.Err())
	}
}

// begin validates req, claims this node for the run and records it as
// running. A successful begin is paired with end.
func (r *Runner) begin(ctx context.Context, req Request) (*store.AuditRun, []Check, error) {
	checks, err := selectChecks(req.Checks)
	if err != nil {
		return nil, nil, err
	}
	if req.Kind == "" {
		req.Kind = store.AuditManual
	}
	ids := make([]string, len(checks))
	for i, c := range checks {
		ids[i] = c.ID
	}
	run := &store.AuditRun{ID: fleet.NewID("aud_", r.now()), Kind: req.Kind, Slot: req.Slot, Actor: req.Actor, Node: r.node, Checks: ids}
	var waited <-chan time.Time
	for {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return nil, nil, ErrStopping
		}
		if r.running == "" {
			break
		}
		id, ending, idle := r.running, r.ending, r.idle
		r.mu.Unlock()
		if !ending {
			return nil, nil, &BusyError{RunID: id}
		}
		if waited == nil {
			t := time.NewTimer(endingWait)
			defer t.Stop()
			waited = t.C
		}
		select {
		case <-idle:
		case <-waited:
			return nil, nil, &BusyError{RunID: id}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	r.running, r.ending, r.idle = run.ID, false, make(chan struct{})
	r.runs.Add(1)
	r.mu.Unlock()
	if err := r.st.StartAuditRun(ctx, run); err != nil {
		r.end()
		return nil, nil, err
	}
	return run, checks, nil
}

// end releases the node after a run.
func (r *Runner) end() {
	r.mu.Lock()
	r.running, r.ending = "", false
	close(r.idle)
	r.mu.Unlock()
	r.runs.Done()
}

// markEnding marks the run in progress as recording its end.
func (r *Runner) markEnding() {
	r.mu.Lock()
	r.ending = true
	r.mu.Unlock()
}

// execute runs the checks of a recorded run and records how it ended.
// When ctx ends first the run is recorded failed with ctx's cause, such
// as ErrStopping.
func (r *Runner) execute(ctx context.Context, run *store.AuditRun, checks []Check) (*store.AuditRun, error) {
	started := time.Now()
	prog := &progress{}
	stopReports := r.reportProgress(ctx, run.ID, prog)
	found, err := r.runChecks(ctx, &countingStore{Store: r.st, p: prog}, checks, prog)
	stopReports()
	// The last report says where the run got to, even when it failed.
	if perr := r.st.AuditRunProgress(context.WithoutCancel(ctx), run.ID, prog.snapshot()); perr != nil {
		r.log.WarnContext(ctx, "audit: progress not recorded", "run", run.ID, "err", perr)
	}
	r.markEnding()
	var done *store.AuditRun
	if err == nil {
		done, err = r.st.FinishAuditRun(ctx, run.ID, run.Checks, found)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if ferr := r.st.FailAuditRun(context.WithoutCancel(ctx), run.ID, err); ferr != nil {
			r.log.WarnContext(ctx, "audit: run not recorded as failed", "run", run.ID, "err", ferr)
		}
		return nil, fmt.Errorf("audit run %s: %w", run.ID, err)
	}
	r.log.InfoContext(ctx, "audit: run finished", "run", run.ID, "kind", run.Kind, "checks", len(run.Checks),
		"findings", done.Counts.Findings, "new", done.Counts.New, "resolved", done.Counts.Resolved, "took", time.Since(started).Round(time.Millisecond))
	return done, nil
}

// runChecks runs checks over one scan of the fleet read through st,
// counting its progress in prog.
func (r *Runner) runChecks(ctx context.Context, st Store, checks []Check, prog *progress) ([]store.Finding, error) {
	sc := &scan{st: st, p: r.p, now: r.now().UTC(), loaded: map[string]error{}}
	var found []store.Finding
	seen := map[string]bool{}
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prog.setCheck(c.ID)
		emit := func(f store.Finding) {
			if !seen[f.Key] {
				seen[f.Key] = true
				found = append(found, f)
				prog.findings.Add(1)
			}
		}
		if err := c.run(ctx, sc, emit); err != nil {
			return nil, fmt.Errorf("check %s: %w", c.ID, err)
		}
		prog.checkDone()
	}
	return found, nil
}

// selectChecks returns the checks with the given ids, all when none.
func selectChecks(ids []string) ([]Check, error) {
	all := All()
	if len(ids) == 0 {
		return all, nil
	}
	var out []Check
	for _, id := range ids {
		i := slices.IndexFunc(all, func(c Check) bool { return c.ID == id })
		if i < 0 {
			return nil, fmt.Errorf("%w %q; the checks are %s", ErrUnknownCheck, id, strings.Join(CheckIDs(), ", "))
		}
		if !slices.ContainsFunc(out, func(c Check) bool { return c.ID == id }) {
			out = append(out, all[i])
		}
	}
	return out, nil
}
