// Package notify tells every node sharing a database that something its
// caches hold has changed: a revocation, a device's state or groups, the CA
// registry, a provisioning template. The store emits a notice in the very
// transaction that changes the data; on PostgreSQL it travels as a NOTIFY,
// which the server delivers to every listening session when, and only if,
// that transaction commits, and Listen relays it to this node's Hub. On
// SQLite (one node) the store hands notices to the Hub after commit.
//
// Notices are hints to re-read, never data: a subscriber reads the current
// state from the store. That keeps a lost notice harmless as long as
// something else triggers a read, which is why Listen announces All on
// every channel after each (re)connection, and why subscribers keep a slow
// periodic refresh as a safety net. See docs/decisions/0013-many-nodes.md.
package notify

import (
	"sync"
)

// Channels, which are also PostgreSQL NOTIFY channel names.
const (
	// Revocations: a certificate was revoked. Payload: All.
	Revocations = "muster_revocations"
	// Devices: a device record changed (state, groups, anything). Payload:
	// the device id, or All after bulk changes.
	Devices = "muster_devices"
	// CAs: the CA registry changed (a CA created, rotated, retired).
	// Payload: All.
	CAs = "muster_cas"
	// Templates: a provisioning template was created, changed or deleted.
	// Payload: its name, or All.
	Templates = "muster_templates"
)

// Channels lists every channel, for listeners.
var Channels = []string{Revocations, Devices, CAs, Templates}

// All is the payload that stands for "anything on this channel may have
// changed": subscribers drop or re-read everything they cache for it.
const All = "*"

// Hub hands notices to this node's subscribers. It is safe for concurrent
// use; the zero value is not, use NewHub.
type Hub struct {
	mu   sync.RWMutex
	subs map[string][]func(payload string)
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub { return &Hub{subs: map[string][]func(string){}} }

// Subscribe calls fn with the payload of every notice on channel from now
// on. fn runs on the publisher's goroutine (the listener, or a committing
// writer on SQLite): it must return quickly, typically after recording
// what to re-read and waking its own goroutine.
func (h *Hub) Subscribe(channel string, fn func(payload string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[channel] = append(h.subs[channel], fn)
}

// Publish delivers a notice to the subscribers of its channel. The store
// calls it on SQLite after a commit; Listen calls it for each PostgreSQL
// notification.
func (h *Hub) Publish(channel, payload string) {
	h.mu.RLock()
	subs := h.subs[channel]
	h.mu.RUnlock()
	for _, fn := range subs {
		fn(payload)
	}
}

// publishAll tells every subscriber of every channel to re-read everything.
func (h *Hub) publishAll() {
	for _, ch := range Channels {
		h.Publish(ch, All)
	}
}
