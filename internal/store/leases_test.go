package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLeases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return now }

		a, err := s.AcquireLease(ctx, "job:1", "node-a", 10*time.Second)
		if err != nil || a.Token != 1 || a.Holder != "node-a" {
			t.Fatalf("first acquisition: %+v, %v", a, err)
		}
		if _, err := s.AcquireLease(ctx, "job:1", "node-b", 10*time.Second); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("acquiring a live lease of another node: %v, want ErrLeaseHeld", err)
		}
		// Renewal keeps it alive past its first expiry.
		now = now.Add(8 * time.Second)
		if err := s.RenewLease(ctx, a, 10*time.Second); err != nil {
			t.Fatalf("renew: %v", err)
		}
		now = now.Add(8 * time.Second)
		if _, err := s.AcquireLease(ctx, "job:1", "node-b", 10*time.Second); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("acquiring a renewed lease: %v, want ErrLeaseHeld", err)
		}
		// Expired: node-b takes over with a larger token, and node-a is fenced.
		now = now.Add(3 * time.Second)
		b, err := s.AcquireLease(ctx, "job:1", "node-b", 10*time.Second)
		if err != nil || b.Token != 2 {
			t.Fatalf("takeover of an expired lease: %+v, %v", b, err)
		}
		if err := s.RenewLease(ctx, a, 10*time.Second); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renewal by the old holder: %v, want ErrLeaseLost", err)
		}
		err = s.inTx(ctx, func(tx *txn) error { return s.checkLease(ctx, tx, a) })
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("fence of the old holder: %v, want ErrLeaseLost", err)
		}
		if err := s.inTx(ctx, func(tx *txn) error { return s.checkLease(ctx, tx, b) }); err != nil {
			t.Fatalf("fence of the holder: %v", err)
		}
		// The old holder's release does not free the new holder's lease.
		if err := s.ReleaseLease(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AcquireLease(ctx, "job:1", "node-c", 10*time.Second); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("after a stale release: %v, want ErrLeaseHeld", err)
		}
		// A real release frees it at once.
		if err := s.ReleaseLease(ctx, b); err != nil {
			t.Fatal(err)
		}
		c, err := s.AcquireLease(ctx, "job:1", "node-c", 10*time.Second)
		if err != nil || c.Token != 3 {
			t.Fatalf("after release: %+v, %v", c, err)
		}
		// A restarted node takes its own lease back at once, fencing its
		// earlier incarnation.
		c2, err := s.AcquireLease(ctx, "job:1", "node-c", 10*time.Second)
		if err != nil || c2.Token != 4 {
			t.Fatalf("re-acquiring one's own lease: %+v, %v", c2, err)
		}
		if err := s.RenewLease(ctx, c, time.Second); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renewal by the earlier incarnation: %v, want ErrLeaseLost", err)
		}
		got, err := s.GetLease(ctx, "job:1")
		if err != nil || got.Holder != "node-c" || got.Token != 4 || !got.ExpiresAt.Equal(now.Add(10*time.Second)) {
			t.Fatalf("GetLease: %+v, %v", got, err)
		}
		if _, err := s.GetLease(ctx, "nothing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetLease of an unknown lease: %v", err)
		}
		if _, err := s.AcquireLease(ctx, "x", "n", 0); err == nil {
			t.Fatal("a lease without a TTL was granted")
		}
	})
}

// TestLeaseRace has many nodes race for one free lease: exactly one wins.
func TestLeaseRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const nodes = 8
		errs := make(chan error, nodes)
		for i := range nodes {
			go func() {
				_, err := s.AcquireLease(ctx, "crl", string(rune('a'+i)), time.Minute)
				errs <- err
			}()
		}
		won := 0
		for range nodes {
			err := <-errs
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrLeaseHeld):
				t.Fatalf("racing acquisition: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d nodes won the lease, want 1", won)
		}
	})
}
