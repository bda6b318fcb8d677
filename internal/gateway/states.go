package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/store"
)

// DeviceSource reads the device status the gateway admits sessions by;
// *store.Store implements it.
type DeviceSource interface {
	DeviceStatus(ctx context.Context, id string) (store.DeviceStatus, error)
	DeviceStatusesSince(ctx context.Context, since time.Time, limit int) ([]store.DeviceStatus, error)
	DeviceStatuses(ctx context.Context, ids []string) ([]store.DeviceStatus, error)
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
// quarantine within a poll interval. Devices another node reports changed
// (DeviceChanged) are re-read at once, which also catches the changes the
// poll's clock-skew window misses (decision 0010).
type stateCache struct {
	src DeviceSource

	mu   sync.RWMutex
	byID map[string]DeviceAccess
	// mark is the latest UpdatedAt the feed has shown.
	mark time.Time
	// stale are cached devices reported changed, to re-read; staleAll
	// means every one.
	stale    map[string]bool
	staleAll bool
	// wake tells the enforcement loop that devices were reported changed.
	wake chan struct{}
}

func newStateCache(src DeviceSource, now time.Time) *stateCache {
	return &stateCache{src: src, byID: map[string]DeviceAccess{}, mark: now, stale: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// DeviceChanged tells the gateway that device id changed (its state or
// groups, perhaps), or with notify.All that any device may have: the live
// sessions concerned are re-read and enforced at once rather than at the
// next poll. A node calls it for the changes it hears of from other nodes
// (see internal/notify). It never blocks.
func (g *Gateway) DeviceChanged(id string) {
	g.states.report(id)
}

// report marks id (or every cached device) for re-reading and wakes the
// enforcement loop. Devices not cached are read on connect anyway.
func (c *stateCache) report(id string) {
	c.mu.Lock()
	if id == notify.All {
		c.staleAll = true
	} else if _, ok := c.byID[id]; ok {
		c.stale[id] = true
	}
	c.mu.Unlock()
	c.wakeEnforcement()
}

// reread reads the devices reported changed again and returns those whose
// status changed, as poll does. Only devices with a live session (live) are
// read; other reported ones leave the cache and are read on their next
// connect. On error the reports are kept for the next pass.
func (c *stateCache) reread(ctx context.Context, live map[string]bool) ([]DeviceAccess, error) {
	c.mu.Lock()
	if !c.staleAll && len(c.stale) == 0 {
		c.mu.Unlock()
		return nil, nil // the usual pass: nothing reported
	}
	reported := c.stale
	if c.staleAll {
		reported = make(map[string]bool, len(c.byID))
		for id := range c.byID {
			reported[id] = true
		}
	}
	var ids []string
	for id := range reported {
		if live[id] {
			ids = append(ids, id)
		} else {
			delete(c.byID, id)
		}
	}
	all := c.staleAll
	c.stale, c.staleAll = map[string]bool{}, false
	c.mu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	sts, err := c.src.DeviceStatuses(ctx, ids)
	if err != nil {
		c.mu.Lock()
		c.staleAll = c.staleAll || all
		for _, id := range ids {
			c.stale[id] = true
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("gateway: re-read changed devices: %w", err)
	}
	var changed []DeviceAccess
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range sts {
		if cur, ok := c.byID[st.ID]; ok && cur.Version >= st.Version {
			continue
		}
		a := accessOfStatus(st)
		c.byID[st.ID] = a
		changed = append(changed, a)
	}
	return changed, nil
}

// access implements accessLookup: from the cache, else from the store.
func (c *stateCache) access(ctx context.Context, id string) (DeviceAccess, error) {
	c.mu.RLock()
	a, ok := c.byID[id]
	// An entry reported changed is not trusted until it is re-read.
	ok = ok && !c.staleAll && !c.stale[id]
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

// confirm is called once a session admitted with status a is registered
// for enforcement. A change that an enforcement pass saw before the
// registration (the poll updated the cache, or a reported device was
// dropped from it because no session held it yet) never reached the
// session; when the cache no longer holds a, or holds it marked changed,
// the device is re-read in the next pass, which now sees the session.
func (c *stateCache) confirm(a DeviceAccess) {
	c.mu.Lock()
	cur, ok := c.byID[a.ID]
	if ok && cur.Version == a.Version && !c.staleAll && !c.stale[a.ID] {
		c.mu.Unlock()
		return
	}
	// Dropping the entry makes the re-read count as a change, so the
	// pass applies it to the session even if the cache was already
	// current.
	delete(c.byID, a.ID)
	c.stale[a.ID] = true
	c.mu.Unlock()
	c.wakeEnforcement()
}

// wakeEnforcement makes the enforcement loop run a pass now. It never
// blocks; wakes while a pass is pending fold into it.
func (c *stateCache) wakeEnforcement() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
