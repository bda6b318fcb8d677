package alert

import (
	"context"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// Lister reads the newest alerts; *store.Store implements it.
type Lister interface {
	ListAlerts(ctx context.Context, f store.AlertFilter, cursor string, limit int) ([]store.Alert, string, error)
}

// followBatch is how many of the newest alerts each poll reads: the most
// alerts other nodes may open between two polls without one being missed
// by this node's streams.
const followBatch = 100

// Follow publishes, on this node's streams and to its MQTT operators,
// the alerts other nodes open, and the acknowledgements and resolutions
// made through other nodes, polling every interval until ctx ends. A node
// raises the alerts of the devices its gateway sees, and an operator may
// acknowledge through any node, so without this an operator following one
// node would miss the others' news. State changes are seen among the
// newest followBatch alerts only: acknowledging an older alert elsewhere
// reaches webhooks (written in its transaction) but not this stream.
func (m *Manager) Follow(ctx context.Context, st Lister, every time.Duration) {
	// seen is the previous poll's batch with each alert's state: an alert
	// in this batch and not in that one is new, since newer alerts only
	// push older ones out; one whose state differs changed meanwhile.
	seen := map[string]string{}
	poll := func(publish bool) {
		as, _, err := st.ListAlerts(ctx, store.AlertFilter{}, "", followBatch)
		if err != nil {
			if ctx.Err() == nil {
				m.log.WarnContext(ctx, "alert: cannot read other nodes' alerts", "err", err)
			}
			return
		}
		batch := make(map[string]string, len(as))
		// Oldest first, so streams see them in the order they were opened.
		for i := len(as) - 1; i >= 0; i-- {
			a := as[i]
			batch[a.ID] = a.State
			if !publish {
				continue
			}
			was, known := seen[a.ID]
			switch {
			case !known && a.Node != m.node:
				m.publish(ctx, store.EventAlertOpened, &a)
			case known && was != a.State && !m.changedHere(a.ID, a.State):
				if ev := stateEvent(a.State); ev != "" {
					m.publish(ctx, ev, &a)
				}
			}
		}
		seen = batch
		m.forgetChanges(time.Now().Add(-changeMemory))
	}
	poll(false) // what exists already is not news
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			poll(true)
		}
	}
}

// stateEvent is the event announcing that an alert reached state, or ""
// for a state that is not announced (open: a new alert is announced as
// opened).
func stateEvent(state string) string {
	switch state {
	case store.AlertAcknowledged:
		return store.EventAlertAcknowledged
	case store.AlertResolved:
		return store.EventAlertResolved
	}
	return ""
}

// noteChange records that this node changed alert id to state and has
// announced it already, so Follow does not announce it again.
func (m *Manager) noteChange(id, state string) {
	m.changes.Store(id+"/"+state, time.Now())
}

// changeMemory is how long a change this node made is remembered for
// Follow: far longer than a poll, and bounded, so changes Follow never
// sees (alerts older than its batch, or no Follow running) are forgotten.
const changeMemory = 10 * time.Minute

// forgetChanges drops the changes noted before cutoff.
func (m *Manager) forgetChanges(cutoff time.Time) {
	m.changes.Range(func(k, v any) bool {
		if v.(time.Time).Before(cutoff) {
			m.changes.Delete(k)
		}
		return true
	})
}

// changedHere reports, once, whether this node made the change of alert id
// to state itself.
func (m *Manager) changedHere(id, state string) bool {
	_, ok := m.changes.LoadAndDelete(id + "/" + state)
	return ok
}
