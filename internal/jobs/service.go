package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store"
)

// DefaultChunkRows is how many rows a chunk holds: large enough that a
// 1,000,000-row job is a thousand transactions, small enough that one
// transaction stays short and a node's memory holds a few chunks at most.
const DefaultChunkRows = 1000

// Config configures a Service or a Runner.
type Config struct {
	Store *store.Store
	// ChunkRows is how many rows a chunk holds; DefaultChunkRows when zero.
	ChunkRows int
	Logger    *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Queued, when set, is called after a job is queued: a node passes
	// its runner's Wake, so a job it accepted starts at once rather than
	// at the runner's next look.
	Queued func()
	// Retention is how long a Runner keeps finished jobs (their manifest
	// and results) before deleting them; zero keeps them until deleted by
	// hand.
	Retention time.Duration
	// PruneEvery is how often a Runner deletes finished jobs past
	// Retention; DefaultPruneEvery when zero.
	PruneEvery time.Duration
	// RetryMin and RetryMax bound the pause before a chunk that failed for
	// a reason other than its rows (the database is down, say) is tried
	// again: RetryMin after the first failure, doubling up to RetryMax.
	// DefaultRetryMin and DefaultRetryMax when zero.
	RetryMin, RetryMax time.Duration
}

func (c Config) withDefaults() Config {
	if c.ChunkRows <= 0 {
		c.ChunkRows = DefaultChunkRows
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PruneEvery <= 0 {
		c.PruneEvery = DefaultPruneEvery
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	return c
}

// Service starts, reads and cancels jobs. It keeps no state of its own, so
// any node can answer for any job.
type Service struct {
	cfg Config
}

// NewService returns a Service over cfg.Store.
func NewService(cfg Config) *Service { return &Service{cfg: cfg.withDefaults()} }

// Start validates spec, stores the manifest read from r in chunks as it
// arrives (memory does not grow with its length) and queues the job, which
// a Runner then applies. Problems with spec or with the manifest as a whole
// (unknown CSV column, no rows) are *fleet.FieldError and leave nothing
// stored; a row that cannot be read becomes that row's error result.
func (s *Service) Start(ctx context.Context, spec Spec, r io.Reader, format mfg.Format, actor string) (*store.Job, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Template != "" {
		rec, err := s.cfg.Store.Template(ctx, spec.Template)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &fleet.FieldError{Field: "template", Message: fmt.Sprintf("no provisioning template %q: create it first (muster templates create)", spec.Template)}
		}
		if err != nil {
			return nil, err
		}
		spec.TemplateVersion = rec.Version
		if spec.Op == OpRegister {
			// A template that no longer parses would fail every row.
			if _, err := newApplier(ctx, s.cfg.Store, spec, actor, s.cfg.Now); err != nil {
				return nil, &fleet.FieldError{Field: "template", Message: err.Error()}
			}
		}
	}
	hash := sha256.New()
	rows, err := newRowReader(bufio.NewReaderSize(io.TeeReader(r, hash), 64<<10), format)
	if err != nil {
		return nil, &fleet.FieldError{Field: "manifest", Message: err.Error()}
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: encode spec: %w", err)
	}
	job := &store.Job{ID: fleet.NewID("job_", s.cfg.Now()), Op: string(spec.Op), Spec: specJSON, Format: string(format)}
	if err := s.cfg.Store.CreateJob(ctx, job, actor); err != nil {
		return nil, err
	}
	n, err := s.upload(ctx, job.ID, rows)
	if err == nil && n == 0 {
		err = &fleet.FieldError{Field: "manifest", Message: "the manifest has no rows"}
	}
	if err == nil {
		job, err = s.cfg.Store.QueueJob(ctx, job.ID, hex.EncodeToString(hash.Sum(nil)))
	}
	if err != nil {
		// The request failed: what was stored of it goes.
		if derr := s.cfg.Store.DeleteJob(context.WithoutCancel(ctx), job.ID); derr != nil {
			s.cfg.Logger.ErrorContext(ctx, "jobs: removing a failed upload", "job", job.ID, "err", derr)
		}
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "job queued", "job", job.ID, "op", job.Op, "rows", job.Rows, "by", actor)
	if s.cfg.Queued != nil {
		s.cfg.Queued()
	}
	return job, nil
}

// upload stores the manifest's rows chunk by chunk and returns their count.
func (s *Service) upload(ctx context.Context, jobID string, rows *rowReader) (int64, error) {
	var (
		chunk []storedRow
		seq   int64
		total int64
	)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		data, err := encodeRows(chunk)
		if err != nil {
			return err
		}
		c := store.JobChunk{JobID: jobID, Seq: seq, FirstRow: total - int64(len(chunk)) + 1, Rows: int64(len(chunk)), Data: data}
		if err := s.cfg.Store.AddJobChunk(ctx, c); err != nil {
			return err
		}
		seq++
		chunk = chunk[:0]
		return nil
	}
	for {
		r, err := rows.next()
		if errors.Is(err, io.EOF) {
			return total, flush()
		}
		if err != nil {
			return total, &fleet.FieldError{Field: "manifest", Message: err.Error()}
		}
		chunk = append(chunk, r)
		total++
		if len(chunk) == s.cfg.ChunkRows {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
}

// Get returns a job.
func (s *Service) Get(ctx context.Context, id string) (*store.Job, error) {
	return s.cfg.Store.GetJob(ctx, id)
}

// List returns up to limit jobs, newest first, older than the job before.
func (s *Service) List(ctx context.Context, status, before string, limit int) ([]store.Job, error) {
	return s.cfg.Store.ListJobs(ctx, status, before, limit)
}

// Cancel stops a job: at once when it has not started, before its next
// chunk otherwise. Rows applied stay applied.
func (s *Service) Cancel(ctx context.Context, id, actor, reason string) (*store.Job, error) {
	return s.cfg.Store.CancelJob(ctx, id, actor, reason)
}

// Delete removes a finished job with its stored manifest and results; the
// rows it applied stay applied. An unfinished job is refused.
func (s *Service) Delete(ctx context.Context, id, actor string) error {
	return s.cfg.Store.PurgeJob(ctx, id, actor)
}

// Results calls fn with every result of the job's applied rows, in row
// order, one chunk in memory at a time. With errorsOnly it skips the rows
// that did not fail.
func (s *Service) Results(ctx context.Context, id string, errorsOnly bool, fn func(*RowResult) error) error {
	if _, err := s.cfg.Store.GetJob(ctx, id); err != nil {
		return err
	}
	return s.cfg.Store.EachJobResults(ctx, id, func(data []byte) error {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var r RowResult
			if err := dec.Decode(&r); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("jobs: stored results of job %s are corrupt: %w", id, err)
			}
			if errorsOnly && r.Status != StatusError {
				continue
			}
			if err := fn(&r); err != nil {
				return err
			}
		}
	})
}
