package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestCAs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		root := testCA("root", "")
		if err := s.InsertCA(ctx, root, "system/bootstrap"); err != nil {
			t.Fatalf("InsertCA: %v", err)
		}
		if root.ID == "" || root.Status != CAActive || root.CreatedAt.IsZero() {
			t.Fatalf("InsertCA left %+v", root)
		}
		if err := s.InsertCA(ctx, testCA("root", ""), "system/bootstrap"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second active root = %v, want ErrDuplicate", err)
		}
		for _, f := range []string{"f1", "f2"} {
			if err := s.InsertCA(ctx, testCA("manufacturing", f), "system/bootstrap"); err != nil {
				t.Fatalf("manufacturing CA of %s: %v", f, err)
			}
		}
		got, err := s.GetCA(ctx, root.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "stored root", *got, *root)
		if _, err := s.GetCA(ctx, "ca_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCA(unknown) = %v, want ErrNotFound", err)
		}

		f1, err := s.ListCAs(ctx, CAFilter{Purpose: "manufacturing", Factory: "f1"})
		if err != nil || len(f1) != 1 {
			t.Fatalf("ListCAs(f1) = %+v, %v", f1, err)
		}
		retireAt := time.Now().Add(720 * time.Hour)
		next := testCA("manufacturing", "f1")
		if err := s.ReplaceCA(ctx, f1[0].ID, retireAt, next, "admin/root"); err != nil {
			t.Fatalf("ReplaceCA: %v", err)
		}
		old, _ := s.GetCA(ctx, f1[0].ID)
		if old.Status != CARetiring || old.RetireAt == nil || !old.RetireAt.Equal(retireAt.UTC().Truncate(time.Microsecond)) {
			t.Fatalf("replaced CA = %+v", old)
		}
		active, _ := s.ListCAs(ctx, CAFilter{Purpose: "manufacturing", Factory: "f1", Status: CAActive})
		if len(active) != 1 || active[0].ID != next.ID {
			t.Fatalf("active f1 CAs = %+v, want %s", active, next.ID)
		}
		if err := s.ReplaceCA(ctx, old.ID, retireAt, testCA("manufacturing", "f1"), "admin/root"); !errors.Is(err, ErrVersionMismatch) {
			t.Errorf("ReplaceCA(retiring) = %v, want ErrVersionMismatch", err)
		}
		if err := s.ReplaceCA(ctx, "ca_nope", retireAt, testCA("manufacturing", "f1"), "admin/root"); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReplaceCA(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceCA(ctx, next.ID, retireAt, testCA("manufacturing", "f2"), "admin/root"); err == nil {
			t.Error("ReplaceCA accepted a successor for another factory")
		}

		if err := s.SetCAStatus(ctx, old.ID, CARetired, old.RetireAt); err != nil {
			t.Fatalf("SetCAStatus: %v", err)
		}
		if err := s.SetCAStatus(ctx, old.ID, CAActive, nil); !errors.Is(err, ErrDuplicate) {
			t.Errorf("reactivating a replaced CA = %v, want ErrDuplicate", err)
		}
		if err := s.SetCAStatus(ctx, "ca_nope", CARetired, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetCAStatus(unknown) = %v, want ErrNotFound", err)
		}
		all, _ := s.ListCAs(ctx, CAFilter{})
		mustEqual(t, "CAs", len(all), 4)
		mustEqual(t, "oldest first", all[0].ID, root.ID)

		evs := mustVerify(t, s, fleet.FleetSubject, 4)
		mustEqual(t, "audit", []string{evs[0].Type, evs[3].Type}, []string{EventCACreated, EventCARotated})
	})
}

// TestCARaceOneWinner starts several bootstraps at once: exactly one root
// is inserted and the others learn it exists.
func TestCARaceOneWinner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		const nodes = 6
		errs := make([]error, nodes)
		var wg sync.WaitGroup
		for i := range nodes {
			wg.Go(func() { errs[i] = s.InsertCA(t.Context(), testCA("root", ""), "system/bootstrap") })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrDuplicate):
				t.Errorf("InsertCA: %v", err)
			}
		}
		mustEqual(t, "winners", won, 1)
		mustEqual(t, "roots", countAll(t, s, "cas"), 1)
	})
}
