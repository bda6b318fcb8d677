package store

import (
	"errors"
	"testing"
)

func TestBatches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		b := &Batch{ID: "B-2026-47", Factory: "acme", KeyMode: "csr"}
		if err := s.CreateBatch(ctx, b, "manufacturer/line-1"); err != nil {
			t.Fatalf("CreateBatch: %v", err)
		}
		if b.Status != BatchRunning || b.CreatedBy != "manufacturer/line-1" || b.CreatedAt.IsZero() || b.FinishedAt != nil {
			t.Fatalf("CreateBatch left %+v", b)
		}
		totals := BatchTotals{Rows: 10, OK: 7, Existing: 1, Errors: 2}
		if err := s.FinishBatch(ctx, b.ID, BatchDone, totals); err != nil {
			t.Fatalf("FinishBatch: %v", err)
		}
		got, err := s.GetBatch(ctx, b.ID)
		if err != nil || got.Status != BatchDone || got.BatchTotals != totals || got.FinishedAt == nil {
			t.Fatalf("GetBatch = %+v, %v", got, err)
		}

		// A resubmission reopens the batch with fresh totals.
		re := &Batch{ID: b.ID, Factory: "acme", KeyMode: "mint"}
		if err := s.CreateBatch(ctx, re, "manufacturer/line-2"); err != nil {
			t.Fatalf("CreateBatch again: %v", err)
		}
		if re.Status != BatchRunning || re.Rows != 0 || re.KeyMode != "mint" || !re.CreatedAt.Equal(got.CreatedAt) || re.CreatedBy != "manufacturer/line-1" {
			t.Fatalf("reopened batch = %+v", re)
		}
		if err := s.CreateBatch(ctx, &Batch{ID: b.ID, Factory: "globex", KeyMode: "csr"}, "x"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateBatch(other factory's id) = %v, want ErrDuplicate", err)
		}
		if err := s.FinishBatch(ctx, "nope", BatchFailed, BatchTotals{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("FinishBatch(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.GetBatch(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetBatch(unknown) = %v, want ErrNotFound", err)
		}
	})
}
