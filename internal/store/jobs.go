package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Job statuses.
const (
	JobUploading = "uploading"
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobCancelled = "cancelled"
)

// Job errors, compared with errors.Is.
var (
	// ErrJobChunkDone means the chunk was applied already (by this node
	// before a restart, or by another node): skip it.
	ErrJobChunkDone = errors.New("job chunk was applied already")
	// ErrJobCancelled means the job was cancelled; no further chunk applies.
	ErrJobCancelled = errors.New("job was cancelled")
	// ErrJobUnfinished means the job is still uploading, queued or
	// running: cancel it first.
	ErrJobUnfinished = errors.New("job has not finished")
)

// Job is one bulk job: an operation applied to every row of a stored
// manifest. The counters always equal the sums over the chunks marked done.
type Job struct {
	ID     string          `json:"id"`
	Op     string          `json:"op"`
	Spec   json.RawMessage `json:"spec"`
	Status string          `json:"status"`
	Format string          `json:"format"`
	// ManifestSHA256 is the hash of the manifest as uploaded.
	ManifestSHA256  string     `json:"manifestSha256"`
	Rows            int64      `json:"rows"`
	Chunks          int64      `json:"chunks"`
	ChunksDone      int64      `json:"chunksDone"`
	OK              int64      `json:"ok"`
	Unchanged       int64      `json:"unchanged"`
	Errors          int64      `json:"errors"`
	CancelRequested bool       `json:"cancelRequested"`
	Node            string     `json:"node,omitempty"`
	CreatedAt       time.Time  `json:"createdAt"`
	CreatedBy       string     `json:"createdBy"`
	UpdatedAt       time.Time  `json:"updatedAt"`
	StartedAt       *time.Time `json:"startedAt,omitempty"`
	FinishedAt      *time.Time `json:"finishedAt,omitempty"`
}

// Finished reports whether the job will change nothing more.
func (j *Job) Finished() bool { return j.Status == JobDone || j.Status == JobCancelled }

// JobChunk is a stored piece of a job's manifest.
type JobChunk struct {
	JobID    string
	Seq      int64
	FirstRow int64 // 1-based number of its first row in the manifest
	Rows     int64
	Data     []byte // the normalised rows, JSON lines
}

// JobChunkOutcome is what applying a chunk did: one result line per row
// (JSON lines, in row order) and the counts by outcome.
type JobChunkOutcome struct {
	Results             []byte
	OK, Unchanged, Errs int64
}

const jobCols = "id, op, spec, status, format, manifest_sha256, rows_total, chunks_total, chunks_done, rows_ok, rows_unchanged, rows_error, cancel_requested, node, created_at, created_by, updated_at, started_at, finished_at"

// CreateJob records a new job whose manifest is about to be uploaded
// (status uploading). j.ID, Op, Spec and Format must be set; CreatedAt,
// CreatedBy and UpdatedAt are filled in.
func (s *Store) CreateJob(ctx context.Context, j *Job, actor string) error {
	now := s.clock()
	j.Status, j.CreatedAt, j.UpdatedAt, j.CreatedBy = JobUploading, now, now, actor
	return s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "INSERT INTO jobs ("+jobCols+") VALUES (?, ?, ?, ?, ?, '', 0, 0, 0, 0, 0, 0, 0, '', ?, ?, ?, NULL, NULL)",
			j.ID, j.Op, string(j.Spec), j.Status, j.Format, now, actor, now)
		if s.d.isUniqueViolation(err) {
			return fmt.Errorf("store: job %s: %w", j.ID, ErrDuplicate)
		}
		if err != nil {
			return fmt.Errorf("store: create job %s: %w", j.ID, err)
		}
		return nil
	})
}

// AddJobChunk stores the next chunk of an uploading job's manifest and
// counts its rows into the job's totals.
func (s *Store) AddJobChunk(ctx context.Context, c JobChunk) error {
	return s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE jobs SET rows_total = rows_total + ?, chunks_total = chunks_total + 1, updated_at = ? WHERE id = ? AND status = ?",
			c.Rows, s.clock(), c.JobID, JobUploading)
		if err != nil {
			return fmt.Errorf("store: add chunk to job %s: %w", c.JobID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: add chunk to job %s: %w", c.JobID, err)
		} else if n == 0 {
			return fmt.Errorf("store: job %s is not uploading: %w", c.JobID, ErrNotFound)
		}
		if _, err := t.exec(ctx, "INSERT INTO job_chunks (job_id, seq, first_row, row_count, rows_data, done, results) VALUES (?, ?, ?, ?, ?, 0, '')",
			c.JobID, c.Seq, c.FirstRow, c.Rows, string(c.Data)); err != nil {
			return fmt.Errorf("store: add chunk %d to job %s: %w", c.Seq, c.JobID, err)
		}
		return nil
	})
}

// QueueJob ends a job's upload: it records the manifest's hash and makes
// the job runnable.
func (s *Store) QueueJob(ctx context.Context, id, manifestSHA256 string) (*Job, error) {
	var out *Job
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE jobs SET status = ?, manifest_sha256 = ?, updated_at = ? WHERE id = ? AND status = ?",
			JobQueued, manifestSHA256, s.clock(), id, JobUploading)
		if err != nil {
			return fmt.Errorf("store: queue job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: queue job %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: job %s is not uploading: %w", id, ErrNotFound)
		}
		out, err = scanJob(t.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
		return err
	})
	return out, err
}

// DeleteJob removes a job and its chunks: an upload that failed.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "DELETE FROM job_chunks WHERE job_id = ?", id); err != nil {
			return fmt.Errorf("store: delete job %s: %w", id, err)
		}
		if _, err := t.exec(ctx, "DELETE FROM jobs WHERE id = ?", id); err != nil {
			return fmt.Errorf("store: delete job %s: %w", id, err)
		}
		return nil
	})
}

// jobDeleteAudit is what the fleet audit log records about a deleted job.
type jobDeleteAudit struct {
	ID     string `json:"id"`
	Op     string `json:"op"`
	Status string `json:"status"`
	Rows   int64  `json:"rows"`
}

// PurgeJob deletes a finished (done or cancelled) job with its stored
// manifest and results, and records it in the fleet audit log. The rows it
// applied stay applied. An unfinished job is refused with
// ErrJobUnfinished, an unknown one with ErrNotFound.
//
// The chunks go first, PurgeBatchChunks per transaction, so no
// transaction grows with the job; then the job row and its audit event in
// one. A purge interrupted between batches leaves the job with part of
// its results; purging it again finishes the work.
func (s *Store) PurgeJob(ctx context.Context, id, actor string) error {
	for {
		n, err := s.PurgeJobChunks(ctx, id, PurgeBatchChunks)
		if err != nil {
			return err
		}
		if n < PurgeBatchChunks {
			break
		}
	}
	return s.inTx(ctx, func(t *txn) error {
		j, err := scanJob(t.queryRow(ctx, "SELECT "+jobCols+" FROM jobs j WHERE id = ?"+t.d.forUpdate("j"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read job %s: %w", id, err)
		}
		if j.Status != JobDone && j.Status != JobCancelled {
			return fmt.Errorf("store: job %s is %s: %w", id, j.Status, ErrJobUnfinished)
		}
		for _, q := range []string{"DELETE FROM job_chunks WHERE job_id = ?", "DELETE FROM jobs WHERE id = ?"} {
			if _, err := t.exec(ctx, q, id); err != nil {
				return fmt.Errorf("store: delete job %s: %w", id, err)
			}
		}
		data, err := eventData(jobDeleteAudit{ID: id, Op: j.Op, Status: j.Status, Rows: j.Rows})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, fleet.EventJobDeleted, actor, data)
	})
}

// StaleUploads returns the ids of jobs still uploading that have not
// received a chunk since before: uploads whose node or client died.
func (s *Store) StaleUploads(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.query(ctx, "SELECT id FROM jobs WHERE status = ? AND updated_at < ?", JobUploading, before)
	if err != nil {
		return nil, fmt.Errorf("store: list stale uploads: %w", err)
	}
	return scanAll(rows, func(r scanner) (*string, error) {
		var id string
		return &id, r.Scan(&id)
	})
}

// GetJob returns the job with the given id, or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (*Job, error) {
	j, err := scanJob(s.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs returns up to limit jobs, newest first, older than the job with
// id before (all when before is empty), and of the given status when status
// is not empty.
func (s *Store) ListJobs(ctx context.Context, status, before string, limit int) ([]Job, error) {
	q := "SELECT " + jobCols + " FROM jobs WHERE 1 = 1"
	var args []any
	if status != "" {
		q += " AND status = ?"
		args = append(args, status)
	}
	if before != "" {
		q += " AND id < ?"
		args = append(args, before)
	}
	q += " ORDER BY id DESC LIMIT ?"
	rows, err := s.query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return scanAll(rows, scanJob)
}

// RunnableJobs returns the jobs a runner may take, oldest first: queued
// ones and running ones (whose node may have died).
func (s *Store) RunnableJobs(ctx context.Context) ([]Job, error) {
	rows, err := s.query(ctx, "SELECT "+jobCols+" FROM jobs WHERE status IN (?, ?) ORDER BY created_at, id", JobQueued, JobRunning)
	if err != nil {
		return nil, fmt.Errorf("store: list runnable jobs: %w", err)
	}
	return scanAll(rows, scanJob)
}

// jobCancelAudit is what the fleet audit log records about a cancel.
type jobCancelAudit struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// CancelJob asks for a job to stop. A queued or uploading job is cancelled
// at once; a running one stops before its next chunk (ApplyJobChunk refuses
// any chunk from now on). A finished job is returned unchanged. A cancel
// that stops a job is recorded in the fleet audit log with actor and reason.
func (s *Store) CancelJob(ctx context.Context, id, actor, reason string) (*Job, error) {
	data, err := eventData(jobCancelAudit{ID: id, Reason: reason})
	if err != nil {
		return nil, err
	}
	var out *Job
	err = s.inTx(ctx, func(t *txn) error {
		now := s.clock()
		res, err := t.exec(ctx, `UPDATE jobs SET cancel_requested = 1, updated_at = ?,
	status = CASE WHEN status IN ('queued', 'uploading') THEN 'cancelled' ELSE status END,
	finished_at = CASE WHEN status IN ('queued', 'uploading') THEN ? ELSE finished_at END
WHERE id = ? AND status IN ('uploading', 'queued', 'running') AND cancel_requested = 0`, now, now, id)
		if err != nil {
			return fmt.Errorf("store: cancel job %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			if err := s.appendFleetEvent(ctx, t, fleet.EventJobCancelled, actor, data); err != nil {
				return err
			}
		}
		out, err = scanJob(t.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", id, ErrNotFound)
		}
		return err
	})
	return out, err
}

// StartJob marks a job running on node under lease l, unless it is
// finished already; it returns the job as stored.
func (s *Store) StartJob(ctx context.Context, l *Lease, id, node string) (*Job, error) {
	var out *Job
	err := s.inTx(ctx, func(t *txn) error {
		if err := s.checkLease(ctx, t, l); err != nil {
			return err
		}
		now := s.clock()
		if _, err := t.exec(ctx, "UPDATE jobs SET status = ?, node = ?, updated_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN (?, ?)",
			JobRunning, node, now, now, id, JobQueued, JobRunning); err != nil {
			return fmt.Errorf("store: start job %s: %w", id, err)
		}
		var err error
		out, err = scanJob(t.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", id, ErrNotFound)
		}
		return err
	})
	return out, err
}

// FinishJob ends a running job under lease l: done when every chunk is
// done, cancelled when a cancel was requested. It returns the job.
func (s *Store) FinishJob(ctx context.Context, l *Lease, id string) (*Job, error) {
	var out *Job
	err := s.inTx(ctx, func(t *txn) error {
		if err := s.checkLease(ctx, t, l); err != nil {
			return err
		}
		now := s.clock()
		if _, err := t.exec(ctx, `UPDATE jobs SET updated_at = ?, finished_at = ?,
	status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'done' END
WHERE id = ? AND status = 'running' AND (cancel_requested = 1 OR chunks_done = chunks_total)`, now, now, id); err != nil {
			return fmt.Errorf("store: finish job %s: %w", id, err)
		}
		var err error
		out, err = scanJob(t.queryRow(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", id, ErrNotFound)
		}
		return err
	})
	return out, err
}

// NextJobChunk returns the first chunk after seq that is not done, or nil
// when there is none.
func (s *Store) NextJobChunk(ctx context.Context, jobID string, afterSeq int64) (*JobChunk, error) {
	c := &JobChunk{JobID: jobID}
	var data string
	err := s.queryRow(ctx, "SELECT seq, first_row, row_count, rows_data FROM job_chunks WHERE job_id = ? AND seq > ? AND done = 0 ORDER BY seq LIMIT 1",
		jobID, afterSeq).Scan(&c.Seq, &c.FirstRow, &c.Rows, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read chunk of job %s: %w", jobID, err)
	}
	c.Data = []byte(data)
	return c, nil
}

// ApplyJobChunk applies chunk seq of job jobID in one transaction: apply
// makes the chunk's changes through tx and returns its outcome, which is
// stored with the chunk as done and added to the job's counters. It fails,
// with nothing written, with ErrJobChunkDone when the chunk is done
// already, ErrJobCancelled when the job was cancelled, and ErrLeaseLost
// when l is no longer the job's lease. apply's error is returned unchanged.
func (s *Store) ApplyJobChunk(ctx context.Context, l *Lease, jobID string, seq int64, actor string,
	apply func(ctx context.Context, tx *JobTx) (*JobChunkOutcome, error)) error {
	return s.inTx(ctx, func(t *txn) error {
		// The job row first: a cancel waits for this transaction, or this
		// transaction sees the cancel.
		var cancel int64
		var status string
		err := t.queryRow(ctx, "SELECT status, cancel_requested FROM jobs j WHERE id = ?"+t.d.forUpdate("j"), jobID).Scan(&status, &cancel)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", jobID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read job %s: %w", jobID, err)
		}
		if cancel != 0 || status == JobCancelled {
			return fmt.Errorf("store: job %s: %w", jobID, ErrJobCancelled)
		}
		if err := s.checkLease(ctx, t, l); err != nil {
			return err
		}
		var done int64
		err = t.queryRow(ctx, "SELECT done FROM job_chunks c WHERE job_id = ? AND seq = ?"+t.d.forUpdate("c"), jobID, seq).Scan(&done)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: chunk %d of job %s: %w", seq, jobID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read chunk %d of job %s: %w", seq, jobID, err)
		}
		if done != 0 {
			return fmt.Errorf("store: chunk %d of job %s: %w", seq, jobID, ErrJobChunkDone)
		}
		out, err := apply(ctx, &JobTx{s: s, t: t, actor: actor})
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, "UPDATE job_chunks SET done = 1, results = ? WHERE job_id = ? AND seq = ?",
			string(out.Results), jobID, seq); err != nil {
			return fmt.Errorf("store: mark chunk %d of job %s done: %w", seq, jobID, err)
		}
		if _, err := t.exec(ctx, "UPDATE jobs SET chunks_done = chunks_done + 1, rows_ok = rows_ok + ?, rows_unchanged = rows_unchanged + ?, rows_error = rows_error + ?, updated_at = ? WHERE id = ?",
			out.OK, out.Unchanged, out.Errs, s.clock(), jobID); err != nil {
			return fmt.Errorf("store: count chunk %d of job %s: %w", seq, jobID, err)
		}
		return nil
	})
}

// EachJobResults calls fn with the results of every done chunk of the job,
// in row order (JSON lines, one per row), reading one chunk at a time so
// memory does not grow with the job.
func (s *Store) EachJobResults(ctx context.Context, jobID string, fn func(results []byte) error) error {
	after := int64(-1)
	for {
		var seq int64
		var res string
		err := s.queryRow(ctx, "SELECT seq, results FROM job_chunks WHERE job_id = ? AND seq > ? AND done = 1 ORDER BY seq LIMIT 1",
			jobID, after).Scan(&seq, &res)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: read results of job %s: %w", jobID, err)
		}
		if err := fn([]byte(res)); err != nil {
			return err
		}
		after = seq
	}
}

func scanJob(r scanner) (*Job, error) {
	var j Job
	var spec string
	var cancel int64
	var started, finished sql.NullTime
	if err := r.Scan(&j.ID, &j.Op, &spec, &j.Status, &j.Format, &j.ManifestSHA256, &j.Rows, &j.Chunks, &j.ChunksDone,
		&j.OK, &j.Unchanged, &j.Errors, &cancel, &j.Node, &j.CreatedAt, &j.CreatedBy, &j.UpdatedAt, &started, &finished); err != nil {
		return nil, err
	}
	j.Spec = json.RawMessage(spec)
	j.CancelRequested = cancel != 0
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	j.StartedAt, j.FinishedAt = timePtr(started), timePtr(finished)
	return &j, nil
}
