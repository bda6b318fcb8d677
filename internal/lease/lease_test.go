package lease_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/store"
)

func newManager(t *testing.T, st *store.Store, node string, ttl time.Duration) *lease.Manager {
	t.Helper()
	m, err := lease.New(lease.Config{Store: st, Node: node, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHeldLease(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Long enough that a loaded machine never delays a renewal (every third
	// of it) past expiry.
	const ttl = 500 * time.Millisecond
	a, b := newManager(t, st, "a", ttl), newManager(t, st, "b", ttl)

	held, err := a.TryAcquire(ctx, "crl")
	if err != nil {
		t.Fatal(err)
	}
	// Renewal keeps it: b cannot take it over several TTLs later.
	time.Sleep(4 * ttl)
	if _, err := b.TryAcquire(ctx, "crl"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("b took a renewed lease: %v", err)
	}
	if held.Context().Err() != nil {
		t.Fatal("a's lease context ended while it was renewed")
	}
	// Release frees it at once for b, with a larger fencing token.
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if held.Context().Err() == nil {
		t.Fatal("a released lease's context is still live")
	}
	hb, err := b.TryAcquire(ctx, "crl")
	if err != nil || hb.Lease().Token <= held.Lease().Token {
		t.Fatalf("b after release: %v, token %d vs %d", err, hb.Lease().Token, held.Lease().Token)
	}

	// A holder whose lease is taken away notices within a renewal and
	// cancels its context.
	c := newManager(t, st, "b", ttl) // the same node restarted
	hc, err := c.TryAcquire(ctx, "crl")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hb.Context().Done():
	case <-time.After(10 * ttl):
		t.Fatal("the superseded holder did not notice it lost its lease")
	}
	if err := hc.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.New(lease.Config{Store: st}); err == nil {
		t.Fatal("a manager without a node name was made")
	}
}
