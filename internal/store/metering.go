package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// This file holds what the device gateway reads and writes: the device
// status it admits sessions by and polls for changes, presence, and the
// metering windows.

// DeviceStatus is the part of a device record the gateway decides sessions
// and topics by.
type DeviceStatus struct {
	ID        string
	State     fleet.State
	Groups    []string
	Version   int64
	UpdatedAt time.Time
}

// statusSelect reads DeviceStatus columns; groups come from doc, without
// the BOM join a full device read does.
const statusSelect = "SELECT id, state, version, updated_at, doc FROM devices"

// DeviceStatus returns the status of the device with the given id, or
// ErrNotFound.
func (s *Store) DeviceStatus(ctx context.Context, id string) (DeviceStatus, error) {
	rows, err := s.query(ctx, statusSelect+" WHERE id = ?", id)
	if err != nil {
		return DeviceStatus{}, fmt.Errorf("store: read status of device %s: %w", id, err)
	}
	out, err := scanStatuses(rows)
	if err != nil {
		return DeviceStatus{}, err
	}
	if len(out) == 0 {
		return DeviceStatus{}, fmt.Errorf("store: device %s: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// DeviceStatusesSince returns up to limit devices changed at or after
// since, oldest change first. Pollers pass the latest UpdatedAt they have
// seen, minus a margin for clock skew between nodes, and skip versions they
// know already.
func (s *Store) DeviceStatusesSince(ctx context.Context, since time.Time, limit int) ([]DeviceStatus, error) {
	rows, err := s.query(ctx, statusSelect+" WHERE updated_at >= ? ORDER BY updated_at LIMIT ?", since.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: read changed devices: %w", err)
	}
	return scanStatuses(rows)
}

// scanStatuses decodes and closes rows of statusSelect.
func scanStatuses(rows *sql.Rows) ([]DeviceStatus, error) {
	defer rows.Close()
	var out []DeviceStatus
	for rows.Next() {
		var st DeviceStatus
		var state, doc string
		if err := rows.Scan(&st.ID, &state, &st.Version, &st.UpdatedAt, &doc); err != nil {
			return nil, fmt.Errorf("store: read device status: %w", err)
		}
		var groups struct {
			Inventory struct {
				Groups []string `json:"groups"`
			} `json:"inventory"`
		}
		if err := json.Unmarshal([]byte(doc), &groups); err != nil {
			return nil, fmt.Errorf("store: decode device %s: %w", st.ID, err)
		}
		st.State, st.Groups = fleet.State(state), groups.Inventory.Groups
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read device statuses: %w", err)
	}
	return out, nil
}

// Presence is whether a device is connected to the gateway, and when it
// was last seen there. It is kept apart from the device record, so that
// connecting bumps no version and appends no history event.
type Presence struct {
	DeviceID    string    `json:"deviceId"`
	Connected   bool      `json:"connected"`
	Node        string    `json:"node,omitempty"`
	Remote      string    `json:"remote,omitempty"`
	ConnectedAt time.Time `json:"connectedAt"`
	LastSeen    time.Time `json:"lastSeen"`
}

// presenceBatch bounds the rows of one upsert statement.
const presenceBatch = 500

// SavePresence records presence for many devices, overwriting what was
// recorded for them.
func (s *Store) SavePresence(ctx context.Context, ps []Presence) error {
	for len(ps) > 0 {
		n := min(len(ps), presenceBatch)
		if err := s.savePresence(ctx, ps[:n]); err != nil {
			return err
		}
		ps = ps[n:]
	}
	return nil
}

func (s *Store) savePresence(ctx context.Context, ps []Presence) error {
	var q strings.Builder
	q.WriteString("INSERT INTO device_presence (device_id, connected, node, remote, connected_at, last_seen) VALUES ")
	args := make([]any, 0, 6*len(ps))
	for i, p := range ps {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
		connected := 0
		if p.Connected {
			connected = 1
		}
		args = append(args, p.DeviceID, connected, p.Node, p.Remote, p.ConnectedAt.UTC(), p.LastSeen.UTC())
	}
	q.WriteString(` ON CONFLICT (device_id) DO UPDATE SET connected = excluded.connected, node = excluded.node,
		remote = excluded.remote, connected_at = excluded.connected_at, last_seen = excluded.last_seen`)
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("store: save presence of %d devices: %w", len(ps), err)
		}
		return nil
	})
}

// DevicePresence returns a device's presence, or ErrNotFound if it never
// connected.
func (s *Store) DevicePresence(ctx context.Context, id string) (Presence, error) {
	p := Presence{DeviceID: id}
	var connected int64
	err := s.queryRow(ctx, "SELECT connected, node, remote, connected_at, last_seen FROM device_presence WHERE device_id = ?", id).
		Scan(&connected, &p.Node, &p.Remote, &p.ConnectedAt, &p.LastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, fmt.Errorf("store: presence of device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Presence{}, fmt.Errorf("store: read presence of device %s: %w", id, err)
	}
	p.Connected = connected != 0
	return p, nil
}

// MeterWindow is what the gateway counted for one device in one fixed
// window. Read from the store it sums every node's counts for the window.
type MeterWindow struct {
	DeviceID     string           `json:"deviceId"`
	Start        time.Time        `json:"start"`
	Seconds      int64            `json:"seconds"`
	Attempts     int64            `json:"connectionAttempts"`
	Connects     int64            `json:"connects"`
	Takeovers    int64            `json:"takeovers"`
	AuthFailures int64            `json:"authorizationFailures"`
	MsgsIn       int64            `json:"messagesIn"`
	MsgsOut      int64            `json:"messagesOut"`
	BytesIn      int64            `json:"bytesIn"`
	BytesOut     int64            `json:"bytesOut"`
	Reports      int64            `json:"reports"`
	BadReports   int64            `json:"rejectedReports"`
	Disconnects  map[string]int64 `json:"disconnects,omitempty"`
	Topics       []string         `json:"topics,omitempty"`
	SourceIPs    []string         `json:"sourceIps,omitempty"`

	// RevokedAttempts counts the attempts refused because the presented
	// certificate (or its CA) is revoked: a device still trying with a
	// certificate it should no longer hold.
	RevokedAttempts int64 `json:"revokedAttempts,omitempty"`
}

// meterCols are device_metrics' columns after device_id, window_start and
// node, in MeterWindow order.
const meterCols = "window_secs, attempts, connects, takeovers, auth_failures, msgs_in, msgs_out, bytes_in, bytes_out, reports, bad_reports, disconnects, topics, source_ips, revoked_attempts"

// meterBatch bounds the rows of one upsert statement.
const meterBatch = 200

// SaveMeterWindows records node's counts for windows, replacing what node
// recorded for the same device and window before: a node saves a window
// repeatedly while it is open, each time with its totals so far.
func (s *Store) SaveMeterWindows(ctx context.Context, node string, ws []MeterWindow) error {
	for len(ws) > 0 {
		n := min(len(ws), meterBatch)
		if err := s.saveMeterWindows(ctx, node, ws[:n]); err != nil {
			return err
		}
		ws = ws[n:]
	}
	return nil
}

func (s *Store) saveMeterWindows(ctx context.Context, node string, ws []MeterWindow) error {
	var q strings.Builder
	q.WriteString("INSERT INTO device_metrics (device_id, window_start, node, " + meterCols + ") VALUES ")
	args := make([]any, 0, 18*len(ws))
	for i, w := range ws {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		disc, err := json.Marshal(orEmpty(w.Disconnects))
		if err != nil {
			return fmt.Errorf("store: encode disconnects: %w", err)
		}
		topics, _ := json.Marshal(orEmptySlice(w.Topics))
		ips, _ := json.Marshal(orEmptySlice(w.SourceIPs))
		args = append(args, w.DeviceID, w.Start.UTC(), node, w.Seconds, w.Attempts, w.Connects, w.Takeovers, w.AuthFailures,
			w.MsgsIn, w.MsgsOut, w.BytesIn, w.BytesOut, w.Reports, w.BadReports, string(disc), string(topics), string(ips), w.RevokedAttempts)
	}
	q.WriteString(" ON CONFLICT (device_id, window_start, node) DO UPDATE SET ")
	for i, c := range strings.Split(meterCols, ", ") {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(c + " = excluded." + c)
	}
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("store: save %d metering windows: %w", len(ws), err)
		}
		return nil
	})
}

// DeviceMetrics returns a device's metering windows that start in
// [from, to), oldest first, each summed over the nodes that counted it.
func (s *Store) DeviceMetrics(ctx context.Context, id string, from, to time.Time) ([]MeterWindow, error) {
	rows, err := s.query(ctx, "SELECT window_start, "+meterCols+
		" FROM device_metrics WHERE device_id = ? AND window_start >= ? AND window_start < ? ORDER BY window_start, node",
		id, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("store: read metrics of device %s: %w", id, err)
	}
	defer rows.Close()
	var out []MeterWindow
	for rows.Next() {
		w := MeterWindow{DeviceID: id}
		var disc, topics, ips string
		if err := rows.Scan(&w.Start, &w.Seconds, &w.Attempts, &w.Connects, &w.Takeovers, &w.AuthFailures,
			&w.MsgsIn, &w.MsgsOut, &w.BytesIn, &w.BytesOut, &w.Reports, &w.BadReports, &disc, &topics, &ips, &w.RevokedAttempts); err != nil {
			return nil, fmt.Errorf("store: read metrics of device %s: %w", id, err)
		}
		if err := errors.Join(json.Unmarshal([]byte(disc), &w.Disconnects), json.Unmarshal([]byte(topics), &w.Topics),
			json.Unmarshal([]byte(ips), &w.SourceIPs)); err != nil {
			return nil, fmt.Errorf("store: decode metrics of device %s: %w", id, err)
		}
		if n := len(out); n > 0 && out[n-1].Start.Equal(w.Start) {
			out[n-1].Merge(w)
			continue
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read metrics of device %s: %w", id, err)
	}
	return out, nil
}

// Merge adds o's counts into w, as when two nodes counted one window.
func (w *MeterWindow) Merge(o MeterWindow) {
	w.Seconds = max(w.Seconds, o.Seconds)
	w.Attempts += o.Attempts
	w.Connects += o.Connects
	w.Takeovers += o.Takeovers
	w.AuthFailures += o.AuthFailures
	w.MsgsIn += o.MsgsIn
	w.MsgsOut += o.MsgsOut
	w.BytesIn += o.BytesIn
	w.BytesOut += o.BytesOut
	w.Reports += o.Reports
	w.BadReports += o.BadReports
	w.RevokedAttempts += o.RevokedAttempts
	for k, v := range o.Disconnects {
		if w.Disconnects == nil {
			w.Disconnects = map[string]int64{}
		}
		w.Disconnects[k] += v
	}
	w.Topics = union(w.Topics, o.Topics)
	w.SourceIPs = union(w.SourceIPs, o.SourceIPs)
}

// union returns a's elements followed by those of b not in a.
func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

func orEmptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
