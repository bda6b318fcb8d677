package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestConfirmCatchesChangesBeforeRegistration: enforcement passes only
// apply changes to registered sessions, and a session registers after the
// read that admitted it. A change a pass saw in between, whether the poll
// found it or another node reported it, must still reach the session once
// it registers.
func TestConfirmCatchesChangesBeforeRegistration(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	for _, c := range []struct {
		name string
		// change suspends the device and lets a pass see it while no
		// session holds it.
		change func(c *stateCache, id string)
	}{
		{"reported by another node", func(c *stateCache, id string) {
			suspendUnseen(t, h, id)
			c.report(id)
			if got, err := c.reread(ctx, map[string]bool{}); err != nil || len(got) != 0 {
				t.Fatalf("reread without live sessions: %v, %v", got, err)
			}
		}},
		{"seen by the poll", func(c *stateCache, id string) {
			h.setState(id, fleet.StateSuspended)
			if got, err := c.poll(ctx); err != nil || len(got) != 1 {
				t.Fatalf("poll: %v, %v; want the suspension", got, err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, _ := h.device(fleet.StateActive)
			cache := newStateCache(h.st, time.Now().Add(-time.Minute))
			admitted, err := cache.access(ctx, d.ID)
			if err != nil || admitted.State != fleet.StateActive {
				t.Fatalf("admission read: %+v, %v", admitted, err)
			}
			c.change(cache, d.ID)
			cache.confirm(admitted)
			got, err := cache.reread(ctx, map[string]bool{d.ID: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].State != fleet.StateSuspended {
				t.Fatalf("pass after registration = %+v, want the suspension", got)
			}
		})
	}

	// A session admitted from a current cache entry needs nothing more.
	d, _ := h.device(fleet.StateActive)
	cache := newStateCache(h.st, time.Now())
	admitted, err := cache.access(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	cache.confirm(admitted)
	if got, err := cache.reread(ctx, map[string]bool{d.ID: true}); err != nil || len(got) != 0 {
		t.Fatalf("unchanged device re-read as changed: %+v, %v", got, err)
	}
}

// TestAccessRereadsReportedDevices: a device reported changed is not
// admitted from its cache entry before the next pass re-reads it.
func TestAccessRereadsReportedDevices(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	d, _ := h.device(fleet.StateActive)
	cache := newStateCache(h.st, time.Now())
	if _, err := cache.access(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	suspendUnseen(t, h, d.ID)
	cache.report(d.ID)
	a, err := cache.access(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != fleet.StateSuspended {
		t.Fatalf("admitted as %s from a cache entry reported changed", a.State)
	}
}
