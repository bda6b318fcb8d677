package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// PresenceSink stores device presence; *store.Store implements it.
type PresenceSink interface {
	SavePresence(ctx context.Context, ps []store.Presence) error
}

// DeviceUpdater changes device records; *store.Store implements it. The
// gateway uses it for one thing: a device's first operational connection
// moves it from provisioned to active.
type DeviceUpdater interface {
	UpdateDevice(ctx context.Context, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*store.Change, error)) (*fleet.Device, error)
}

// Presence timing.
const (
	// presenceFlush is how often presence changes are written, in one
	// batch, so a reconnect storm costs a few statements, not one each.
	presenceFlush = time.Second
	// lastSeenEvery is how often live sessions refresh last-seen.
	lastSeenEvery = time.Minute
)

// gatewayActor is the actor the gateway records its own changes under.
const gatewayActor = "gateway"

// presence batches presence changes for the sink.
type presence struct {
	sink PresenceSink
	node string

	mu      sync.Mutex
	pending map[string]store.Presence
}

// note queues a device's presence, replacing any not yet written.
func (p *presence) note(ps store.Presence) {
	if p == nil {
		return
	}
	ps.Node = p.node
	p.mu.Lock()
	p.pending[ps.DeviceID] = ps
	p.mu.Unlock()
}

// flush writes what is queued. A failed write is requeued unless newer
// presence for the device arrived meanwhile.
func (p *presence) flush(ctx context.Context) error {
	p.mu.Lock()
	batch := make([]store.Presence, 0, len(p.pending))
	for _, ps := range p.pending {
		batch = append(batch, ps)
	}
	clear(p.pending)
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := p.sink.SavePresence(ctx, batch)
	if err != nil {
		p.mu.Lock()
		for _, ps := range batch {
			if _, newer := p.pending[ps.DeviceID]; !newer {
				p.pending[ps.DeviceID] = ps
			}
		}
		p.mu.Unlock()
		return fmt.Errorf("gateway: save presence: %w", err)
	}
	return nil
}

// presenceLoop flushes presence every presenceFlush and refreshes the
// last-seen of live sessions every lastSeenEvery, until ctx ends; then it
// flushes once more, so a clean shutdown leaves no device marked connected.
func (g *Gateway) presenceLoop(ctx context.Context) {
	flush := time.NewTicker(presenceFlush)
	defer flush.Stop()
	seen := time.NewTicker(lastSeenEvery)
	defer seen.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := g.presence.flush(context.WithoutCancel(ctx)); err != nil {
				g.log.WarnContext(ctx, "gateway: final presence flush failed", "err", err)
			}
			return
		case <-seen.C:
			now := time.Now()
			for _, s := range g.sessions.snapshot() {
				if ps, ok := s.conn.presence(now, true); ok {
					g.presence.note(ps)
				}
			}
		case <-flush.C:
			if err := g.presence.flush(ctx); err != nil {
				g.log.WarnContext(ctx, "gateway: presence not saved; retrying", "err", err)
			}
		}
	}
}

// activate moves a provisioned device to active on its first operational
// connection, with a history event; a device in any other state is left
// alone.
func (g *Gateway) activate(ctx context.Context, id string) {
	_, err := g.updater.UpdateDevice(ctx, id, 0, gatewayActor, func(d *fleet.Device) (*store.Change, error) {
		from := d.Lifecycle.State
		if from != fleet.StateProvisioned {
			return nil, nil
		}
		if err := fleet.Transition(from, fleet.StateActive); err != nil {
			return nil, err
		}
		const reason = "first operational connection to the gateway"
		now := time.Now().UTC()
		d.Lifecycle.State = fleet.StateActive
		d.Lifecycle.StateChangedAt = now
		d.Lifecycle.Changes = append(d.Lifecycle.Changes, fleet.StateChange{From: from, To: fleet.StateActive, At: now, Actor: gatewayActor, Reason: reason})
		data, err := json.Marshal(map[string]any{"from": from, "to": fleet.StateActive, "reason": reason})
		if err != nil {
			return nil, err
		}
		return &store.Change{Type: fleet.EventStateChanged, Data: json.RawMessage(data)}, nil
	})
	if err != nil {
		g.log.WarnContext(ctx, "gateway: cannot activate device", "device", id, "err", err)
	}
}
