package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// DeviceSource reads the device status the gateway admits sessions by;
// *store.Store implements it.
type DeviceSource interface {
	DeviceStatus(ctx context.Context, id string) (store.DeviceStatus, error)
	DeviceStatusesSince(ctx context.Context, since time.Time, limit int) ([]store.DeviceStatus, error)
}

// Polling the change feed.
const (
	// changePage bounds one read of the change feed.
	changePage = 1000
	// clockSkew is how far back each poll rereads, so a change committed
	// by a node whose clock lags ours is still seen. Rereads are skipped
	// by version.
	clockSkew = 2 * time.Second
)

// stateCache is the gateway's view of device statuses: filled on connect,
// kept current by polling the store's change feed, so connecting devices
// cost one indexed read at most and live sessions learn of suspension or
// quarantine within a poll interval.
type stateCache struct {
	src DeviceSource

	mu   sync.RWMutex
	byID map[string]DeviceAccess
	// mark is the latest UpdatedAt the feed has shown.
	mark time.Time
}

func newStateCache(src DeviceSource, now time.Time) *stateCache {
	return &stateCache{src: src, byID: map[string]DeviceAccess{}, mark: now}
}

// access implements accessLookup: from the cache, else from the store.
func (c *stateCache) access(ctx context.Context, id string) (DeviceAccess, error) {
	c.mu.RLock()
	a, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return a, nil
	}
	st, err := c.src.DeviceStatus(ctx, id)
	if err != nil {
		return DeviceAccess{}, err
	}
	a = accessOfStatus(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.byID[id]; ok && cur.Version >= a.Version {
		return cur, nil // a poll stored a newer one meanwhile
	}
	c.byID[id] = a
	return a, nil
}

// poll reads the change feed and returns the cached devices whose status
// changed. Devices not in the cache are ignored: they are read on connect.
func (c *stateCache) poll(ctx context.Context) ([]DeviceAccess, error) {
	c.mu.RLock()
	since := c.mark.Add(-clockSkew)
	c.mu.RUnlock()
	var changed []DeviceAccess
	for {
		page, err := c.src.DeviceStatusesSince(ctx, since, changePage)
		if err != nil {
			return changed, fmt.Errorf("gateway: poll device changes: %w", err)
		}
		c.mu.Lock()
		for _, st := range page {
			c.mark = maxTime(c.mark, st.UpdatedAt)
			cur, ok := c.byID[st.ID]
			if !ok || cur.Version >= st.Version {
				continue
			}
			a := accessOfStatus(st)
			c.byID[st.ID] = a
			changed = append(changed, a)
		}
		c.mu.Unlock()
		// A full page means more may follow. Page on from its last
		// timestamp; if the whole page shared one timestamp, rereading
		// would not move on, and the next poll continues instead.
		if len(page) < changePage || !page[len(page)-1].UpdatedAt.After(since) {
			return changed, nil
		}
		since = page[len(page)-1].UpdatedAt
	}
}

func accessOfStatus(st store.DeviceStatus) DeviceAccess {
	return DeviceAccess{ID: st.ID, State: st.State, Groups: st.Groups, Version: st.Version}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
