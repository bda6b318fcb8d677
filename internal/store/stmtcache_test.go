package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestUpdateDeviceSQLSetsOnlyChangedColumns(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	was := []any{"dev_1", "f1", "m1", "s1", "b1", "manufactured", "acme", int64(1), int64(1), "h1", at, at, nil, "{1}"}
	now := []any{"dev_1", "f1", "m1", "s1", "b1", "provisioned", "acme", int64(2), int64(2), "h2", at.In(time.FixedZone("x", 3600)), at.Add(time.Second), nil, "{2}"}
	query, args := updateDeviceSQL(was, now)
	mustEqual(t, "query", query, "UPDATE devices SET state = ?, version = ?, head_seq = ?, head_hash = ?, updated_at = ?, doc = ? WHERE id = ?")
	mustEqual(t, "arguments", fmt.Sprint(args), fmt.Sprint([]any{"provisioned", int64(2), int64(2), "h2", at.Add(time.Second), "{2}", "dev_1"}))
}

// The cache must not change what reads and writes return, and must keep
// serving after it evicts and after a statement it holds was evicted
// while a transaction used it.
func TestStatementCache(t *testing.T) {
	s := openTestStore(t, sqliteTestURL(t))
	d := mustCreate(t, s, newTestDevice("s1"))
	for i := range 3 {
		got, err := s.UpdateDevice(t.Context(), d.ID, 0, "tester", func(d *fleet.Device) (*Change, error) {
			d.Attributes["fw"] = fmt.Sprint(i)
			return &Change{}, nil
		})
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		mustEqual(t, "version", got.Version, int64(i+2))
		read, err := s.GetDevice(t.Context(), d.ID)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		sameDevice(t, read, got)
	}
	if len(s.wstmts.m) == 0 || len(s.rstmts.m) == 0 {
		t.Fatalf("cached statements: writer %d, readers %d; want some of each", len(s.wstmts.m), len(s.rstmts.m))
	}
	// Fill the read cache past its bound with distinct queries.
	for i := range maxCachedStmts + 10 {
		var n int
		if err := s.queryRow(t.Context(), fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if n := len(s.rstmts.m); n > maxCachedStmts {
		t.Fatalf("read cache holds %d statements, bound %d", n, maxCachedStmts)
	}
	// A writer statement evicted inside a transaction still runs there:
	// the first transaction has it prepared, the second evicts it between
	// two uses.
	const touch = "UPDATE devices SET owner = owner WHERE id = ?"
	for round := range 2 {
		err := s.inTx(t.Context(), func(tx *txn) error {
			if _, err := tx.exec(t.Context(), touch, d.ID); err != nil {
				return err
			}
			if round == 1 {
				if tx.stmts[touch] == nil {
					t.Error("the second transaction did not use the prepared statement")
				}
				s.wstmts.close()
			}
			_, err := tx.exec(t.Context(), touch, d.ID)
			return err
		})
		if err != nil {
			t.Fatalf("transaction %d: %v", round, err)
		}
	}
	if _, err := s.GetDevice(t.Context(), d.ID); err != nil {
		t.Fatalf("get after eviction: %v", err)
	}
}
