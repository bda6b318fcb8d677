package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PurgeBatchChunks is how many chunks PurgeJob deletes per transaction. A
// chunk holds up to a thousand rows with their results, a few hundred KB,
// so a batch is a few MB: deleting a 1,000,000-row job is about a hundred
// short transactions rather than one that holds hundreds of MB of undo.
const PurgeBatchChunks = 10

// FinishedJobsBefore returns the ids of up to limit finished (done or
// cancelled) jobs that finished before before, longest finished first:
// the jobs retention deletes. Unfinished jobs are never returned.
func (s *Store) FinishedJobsBefore(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.query(ctx, "SELECT id FROM jobs WHERE status IN (?, ?) AND COALESCE(finished_at, updated_at) < ? ORDER BY COALESCE(finished_at, updated_at), id LIMIT ?",
		JobDone, JobCancelled, before.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: list finished jobs: %w", err)
	}
	return scanAll(rows, func(r scanner) (*string, error) {
		var id string
		return &id, r.Scan(&id)
	})
}

// PurgeJobChunks deletes up to limit of a finished job's stored chunks
// (manifest and results) in one transaction and returns how many it
// deleted; the job itself stays until PurgeJob. An unfinished job is
// refused with ErrJobUnfinished, an unknown one with ErrNotFound.
func (s *Store) PurgeJobChunks(ctx context.Context, id string, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("store: purge chunks of job %s: limit %d, want at least 1", id, limit)
	}
	var n int64
	err := s.inTx(ctx, func(t *txn) error {
		// The job row first, locked: its status cannot change under us
		// (a finished job never becomes unfinished, but a cancel or a
		// runner may be about to finish it).
		var status string
		err := t.queryRow(ctx, "SELECT status FROM jobs j WHERE id = ?"+t.d.forUpdate("j"), id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: job %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read job %s: %w", id, err)
		}
		if status != JobDone && status != JobCancelled {
			return fmt.Errorf("store: job %s is %s: %w", id, status, ErrJobUnfinished)
		}
		res, err := t.exec(ctx, "DELETE FROM job_chunks WHERE job_id = ? AND seq IN (SELECT seq FROM job_chunks WHERE job_id = ? ORDER BY seq LIMIT ?)", id, id, limit)
		if err != nil {
			return fmt.Errorf("store: delete chunks of job %s: %w", id, err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: delete chunks of job %s: %w", id, err)
		}
		return nil
	})
	return n, err
}
