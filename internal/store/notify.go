package store

import (
	"context"
	"fmt"

	"github.com/muster-iot/muster/internal/notify"
)

// Notifier receives the store's change notices on SQLite, after the
// transaction that made the change commits; *notify.Hub is one. On
// PostgreSQL notices travel as NOTIFY inside the transaction instead, and
// each node's notify.Hub.Listen relays them, so every node sharing the
// database hears them, this one included.
type Notifier interface {
	Publish(channel, payload string)
}

// maxNotices bounds the notices one transaction sends per channel: past it,
// a single notify.All replaces them, so a bulk change of a million devices
// costs one notification, and each node one re-read of what it caches,
// instead of a million. It is well above a provisioning batch (128
// devices), whose devices are rarely cached anywhere yet: naming them
// spares every gateway a re-read of all its sessions.
const maxNotices = 1024

// notice records that t changes what the subscribers of channel cache;
// payload says what (a device id, a template name) or is notify.All.
func (t *txn) notice(channel, payload string) {
	if t.notices == nil {
		t.notices = map[string]map[string]bool{}
	}
	set := t.notices[channel]
	if set == nil {
		set = map[string]bool{}
		t.notices[channel] = set
	}
	if set[notify.All] {
		return
	}
	if len(set) >= maxNotices || payload == notify.All {
		clear(set)
		payload = notify.All
	}
	set[payload] = true
}

// sendNotices issues t's notices inside t, on PostgreSQL: PostgreSQL
// delivers them when, and only if, t commits. On SQLite it does nothing;
// publishNotices runs after the commit instead.
func (t *txn) sendNotices(ctx context.Context) error {
	if len(t.notices) == 0 || t.d.name() != "postgres" {
		return nil
	}
	var channels, payloads []string
	for ch, set := range t.notices {
		for p := range set {
			channels = append(channels, ch)
			payloads = append(payloads, p)
		}
	}
	if _, err := t.tx.ExecContext(ctx, "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)", channels, payloads); err != nil {
		return fmt.Errorf("store: notify other nodes of the change: %w", err)
	}
	return nil
}

// publishNotices hands t's notices to the store's notifier after t
// committed, on SQLite.
func (s *Store) publishNotices(t *txn) {
	if len(t.notices) == 0 || s.notifier == nil || s.d.name() == "postgres" {
		return
	}
	for ch, set := range t.notices {
		for p := range set {
			s.notifier.Publish(ch, p)
		}
	}
}
