package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// eventCols are the events columns in the order eventRow gives them.
var eventCols = []string{"subject", "seq", "type", "actor", "at", "data", "prev_hash", "hash"}

// eventRow is the events row for a sealed event. Data is stored as text so
// the bytes read back are the bytes that were hashed.
func eventRow(e *fleet.Event) []any {
	var data any
	if e.Data != nil {
		data = string(e.Data)
	}
	return []any{e.Subject, e.Seq, e.Type, e.Actor, e.At, data, e.PrevHash, e.Hash}
}

// chainHead is the last event of a chain as the next Seal needs it; nil
// when the chain is empty.
func chainHead(seq int64, hash string) *fleet.Event {
	if seq == 0 {
		return nil
	}
	return &fleet.Event{Seq: seq, Hash: hash}
}

// insertEvent writes one sealed event.
func insertEvent(ctx context.Context, t *txn, e *fleet.Event) error {
	if _, err := t.exec(ctx, insertSQL("events", eventCols, 1), eventRow(e)...); err != nil {
		return fmt.Errorf("store: append %s event %d: %w", e.Subject, e.Seq, err)
	}
	return nil
}

// History returns the events of one chain in order: a device's history when
// subject is a device id, the fleet audit log for fleet.FleetSubject. A
// subject without events is ErrNotFound, except the fleet log, which may be
// empty.
func (s *Store) History(ctx context.Context, subject string) ([]fleet.Event, error) {
	rows, err := s.query(ctx, `SELECT subject, seq, type, actor, at, data, prev_hash, hash
		FROM events WHERE subject = ? ORDER BY seq`, subject)
	if err != nil {
		return nil, fmt.Errorf("store: read history of %s: %w", subject, err)
	}
	defer rows.Close()
	var out []fleet.Event
	for rows.Next() {
		var e fleet.Event
		var at time.Time
		var data sql.NullString
		if err := rows.Scan(&e.Subject, &e.Seq, &e.Type, &e.Actor, &at, &data, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("store: read history of %s: %w", subject, err)
		}
		e.At = at.UTC()
		if data.Valid {
			e.Data = []byte(data.String)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read history of %s: %w", subject, err)
	}
	if len(out) == 0 && subject != fleet.FleetSubject {
		return nil, fmt.Errorf("store: history of %s: %w", subject, ErrNotFound)
	}
	return out, nil
}

// AppendFleetEvent records an admin action that concerns no single device in
// the fleet audit log. data is marshalled to JSON (json.RawMessage is kept
// as given).
func (s *Store) AppendFleetEvent(ctx context.Context, typ, actor string, data any) error {
	if typ == "" || actor == "" {
		return errors.New("store: a fleet event needs a type and an actor")
	}
	raw, err := eventData(data)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(t *txn) error { return s.appendFleetEvent(ctx, t, typ, actor, raw) })
}

// appendDeviceEvents appends changes, in order, to a device's history inside
// t without touching the device record: they record facts kept in other
// tables, such as its certificates, so the version and document stay as
// they are. Locking the device row orders the append against concurrent
// updates, which move the same head. A missing device is ErrNotFound.
func (s *Store) appendDeviceEvents(ctx context.Context, t *txn, deviceID, actor string, changes ...Change) error {
	var seq int64
	var hash string
	err := t.queryRow(ctx, "SELECT head_seq, head_hash FROM devices d WHERE id = ?"+t.d.forUpdate("d"), deviceID).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: device %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: read history head of %s: %w", deviceID, err)
	}
	now := s.clock()
	prev := chainHead(seq, hash)
	for _, ch := range changes {
		data, err := eventData(ch.Data)
		if err != nil {
			return err
		}
		e := fleet.Event{Subject: deviceID, Type: ch.Type, Actor: actor, At: now, Data: data}
		e.Seal(prev)
		if err := insertEvent(ctx, t, &e); err != nil {
			return err
		}
		prev = &e
	}
	if prev == nil || prev.Seq == seq {
		return nil
	}
	if _, err := t.exec(ctx, "UPDATE devices SET head_seq = ?, head_hash = ? WHERE id = ?", prev.Seq, prev.Hash, deviceID); err != nil {
		return fmt.Errorf("store: advance history head of %s: %w", deviceID, err)
	}
	return nil
}

// appendFleetEvent appends to the fleet audit log inside t. Locking the head
// row orders concurrent appends, so the chain never forks.
func (s *Store) appendFleetEvent(ctx context.Context, t *txn, typ, actor string, data []byte) error {
	var seq int64
	var hash string
	if err := t.queryRow(ctx, "SELECT seq, hash FROM fleet_head h WHERE id = 1"+t.d.forUpdate("h")).Scan(&seq, &hash); err != nil {
		return fmt.Errorf("store: read fleet log head: %w", err)
	}
	e := fleet.Event{Subject: fleet.FleetSubject, Type: typ, Actor: actor, At: s.clock(), Data: data}
	e.Seal(chainHead(seq, hash))
	if _, err := t.exec(ctx, "UPDATE fleet_head SET seq = ?, hash = ? WHERE id = 1", e.Seq, e.Hash); err != nil {
		return fmt.Errorf("store: advance fleet log head: %w", err)
	}
	return insertEvent(ctx, t, &e)
}
