package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Batch statuses.
const (
	BatchRunning = "running"
	BatchDone    = "done"
	BatchFailed  = "failed"
)

// Batch is one manufacturing batch: its latest submission and that
// submission's totals. Its id is also the batch name its devices carry.
type Batch struct {
	ID      string `json:"id"`
	Factory string `json:"factory"`
	KeyMode string `json:"keyMode"`
	Status  string `json:"status"`
	BatchTotals
	CreatedAt  time.Time  `json:"createdAt"`
	CreatedBy  string     `json:"createdBy"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// BatchTotals counts a submission's rows by outcome.
type BatchTotals struct {
	Rows     int `json:"rows"`
	OK       int `json:"ok"`
	Existing int `json:"existing"`
	Errors   int `json:"errors"`
}

const batchCols = "id, factory, key_mode, status, rows_total, rows_ok, rows_existing, rows_error, created_at, created_by, finished_at"

// CreateBatch records the start of a batch submission: a new batch, or a
// resubmission of a batch of the same factory, which starts its totals
// afresh (the rows it had are now existing ones). It sets CreatedAt and
// CreatedBy on a new batch and the status to running. A batch id taken by
// another factory is ErrDuplicate.
func (s *Store) CreateBatch(ctx context.Context, b *Batch, actor string) error {
	now := s.clock()
	var out *Batch
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "INSERT INTO batches ("+batchCols+") VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?, ?, NULL) ON CONFLICT DO NOTHING",
			b.ID, b.Factory, b.KeyMode, BatchRunning, now, actor)
		if err != nil {
			return fmt.Errorf("store: create batch %s: %w", b.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: create batch %s: %w", b.ID, err)
		} else if n == 0 {
			res, err = t.exec(ctx, "UPDATE batches SET key_mode = ?, status = ?, rows_total = 0, rows_ok = 0, rows_existing = 0, rows_error = 0, finished_at = NULL WHERE id = ? AND factory = ?",
				b.KeyMode, BatchRunning, b.ID, b.Factory)
			if err != nil {
				return fmt.Errorf("store: reopen batch %s: %w", b.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store: reopen batch %s: %w", b.ID, err)
			} else if n == 0 {
				return fmt.Errorf("store: batch %q belongs to another factory: %w", b.ID, ErrDuplicate)
			}
		}
		out, err = scanBatch(t.queryRow(ctx, "SELECT "+batchCols+" FROM batches WHERE id = ?", b.ID))
		return err
	})
	if err != nil {
		return err
	}
	*b = *out
	return nil
}

// FinishBatch records a submission's outcome: its status (done or failed)
// and totals. An unknown id is ErrNotFound.
func (s *Store) FinishBatch(ctx context.Context, id, status string, totals BatchTotals) error {
	if status != BatchDone && status != BatchFailed {
		return fmt.Errorf("store: a batch finishes done or failed, not %q", status)
	}
	return s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE batches SET status = ?, rows_total = ?, rows_ok = ?, rows_existing = ?, rows_error = ?, finished_at = ? WHERE id = ?",
			status, totals.Rows, totals.OK, totals.Existing, totals.Errors, s.clock(), id)
		if err != nil {
			return fmt.Errorf("store: finish batch %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: finish batch %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: batch %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// GetBatch returns the batch with the given id, or ErrNotFound.
func (s *Store) GetBatch(ctx context.Context, id string) (*Batch, error) {
	b, err := scanBatch(s.queryRow(ctx, "SELECT "+batchCols+" FROM batches WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: batch %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read batch %s: %w", id, err)
	}
	return b, nil
}

func scanBatch(r scanner) (*Batch, error) {
	var b Batch
	var finished sql.NullTime
	if err := r.Scan(&b.ID, &b.Factory, &b.KeyMode, &b.Status, &b.Rows, &b.OK, &b.Existing, &b.Errors,
		&b.CreatedAt, &b.CreatedBy, &finished); err != nil {
		return nil, err
	}
	b.CreatedAt = b.CreatedAt.UTC()
	b.FinishedAt = timePtr(finished)
	return &b, nil
}
