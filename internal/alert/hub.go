package alert

import (
	"sync"

	"github.com/muster-iot/muster/internal/store"
)

// Hub fans alert events out to subscribers such as server-sent-event
// streams. A subscriber that falls behind loses events rather than slow
// down alerting; its channel is never blocked on.
type Hub struct {
	mu   sync.Mutex
	subs map[chan store.AlertEvent]struct{}
}

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[chan store.AlertEvent]struct{}{}} }

// Subscribe returns a channel of events and a function that ends the
// subscription.
func (h *Hub) Subscribe() (<-chan store.AlertEvent, func()) {
	ch := make(chan store.AlertEvent, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// Publish sends ev to every subscriber with room for it.
func (h *Hub) Publish(ev store.AlertEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}
