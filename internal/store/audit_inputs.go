package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// This file holds the fleet-wide reads the configuration audit makes. They
// stream, so an audit of a large fleet holds one row at a time rather than
// the fleet.

// EachCertificate calls fn for every certificate Muster issued or
// registered, revoked ones included, in no particular order.
func (s *Store) EachCertificate(ctx context.Context, fn func(*Certificate) error) error {
	rows, err := s.query(ctx, "SELECT "+certificateCols+" FROM certificates")
	if err != nil {
		return fmt.Errorf("store: read certificates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCertificate(rows)
		if err != nil {
			return fmt.Errorf("store: read certificates: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read certificates: %w", err)
	}
	return nil
}

// SharedKeys returns the public key fingerprints certified for more than
// one device, each with those devices. The store refuses such keys when it
// issues; this finds what came in another way (or before that check).
func (s *Store) SharedKeys(ctx context.Context) (map[string][]string, error) {
	rows, err := s.query(ctx, `SELECT DISTINCT fingerprint, device_id FROM certificates WHERE fingerprint IN
		(SELECT fingerprint FROM certificates GROUP BY fingerprint HAVING COUNT(DISTINCT device_id) > 1) ORDER BY fingerprint, device_id`)
	if err != nil {
		return nil, fmt.Errorf("store: read shared keys: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var fp, dev string
		if err := rows.Scan(&fp, &dev); err != nil {
			return nil, fmt.Errorf("store: read shared keys: %w", err)
		}
		out[fp] = append(out[fp], dev)
	}
	return out, rows.Err()
}

// AuditDevice is the part of a device record the audit reads: its state,
// its firmware, and the SHA-256 of its BOM, if it has one.
type AuditDevice struct {
	ID             string
	State          fleet.State
	StateChangedAt time.Time
	Firmware       []fleet.FirmwareVersion
	BOMSHA256      string
}

// auditDoc is what EachAuditDevice decodes of a device document; the rest
// is skipped, which makes a fleet-wide pass cheaper than full records.
type auditDoc struct {
	ID        string `json:"id"`
	Lifecycle struct {
		State          fleet.State `json:"state"`
		StateChangedAt time.Time   `json:"stateChangedAt"`
	} `json:"lifecycle"`
	Provisioning struct {
		Firmware []fleet.FirmwareVersion `json:"firmware"`
	} `json:"provisioning"`
}

// EachAuditDevice calls fn for every device, in no particular order.
func (s *Store) EachAuditDevice(ctx context.Context, fn func(AuditDevice) error) error {
	rows, err := s.query(ctx, "SELECT bom_sha256, doc FROM devices")
	if err != nil {
		return fmt.Errorf("store: read devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var bom sql.NullString
		var doc []byte
		if err := rows.Scan(&bom, &doc); err != nil {
			return fmt.Errorf("store: read devices: %w", err)
		}
		var d auditDoc
		if err := json.Unmarshal(doc, &d); err != nil {
			return fmt.Errorf("store: decode device: %w", err)
		}
		err := fn(AuditDevice{ID: d.ID, State: d.Lifecycle.State, StateChangedAt: d.Lifecycle.StateChangedAt.UTC(),
			Firmware: d.Provisioning.Firmware, BOMSHA256: bom.String})
		if err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read devices: %w", err)
	}
	return nil
}

// BOMs returns every stored BOM document by its SHA-256. Devices of one
// model share one, so there are few.
func (s *Store) BOMs(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.query(ctx, "SELECT sha256, doc FROM boms")
	if err != nil {
		return nil, fmt.Errorf("store: read BOMs: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var sha, doc string
		if err := rows.Scan(&sha, &doc); err != nil {
			return nil, fmt.Errorf("store: read BOMs: %w", err)
		}
		out[sha] = []byte(doc)
	}
	return out, rows.Err()
}

// AllPresence returns the presence of every device that ever connected.
func (s *Store) AllPresence(ctx context.Context) ([]Presence, error) {
	rows, err := s.query(ctx, "SELECT device_id, connected, node, remote, connected_at, last_seen FROM device_presence")
	if err != nil {
		return nil, fmt.Errorf("store: read presence: %w", err)
	}
	return scanAll(rows, func(r scanner) (*Presence, error) {
		var p Presence
		var connected int64
		if err := r.Scan(&p.DeviceID, &connected, &p.Node, &p.Remote, &p.ConnectedAt, &p.LastSeen); err != nil {
			return nil, err
		}
		p.Connected, p.ConnectedAt, p.LastSeen = connected != 0, p.ConnectedAt.UTC(), p.LastSeen.UTC()
		return &p, nil
	})
}

// EachMeterRow calls fn for every node's metering window that starts at or
// after since, unmerged: each row is what one node counted.
func (s *Store) EachMeterRow(ctx context.Context, since time.Time, fn func(node string, w MeterWindow) error) error {
	rows, err := s.query(ctx, "SELECT device_id, window_start, node, "+meterCols+" FROM device_metrics WHERE window_start >= ?", since.UTC())
	if err != nil {
		return fmt.Errorf("store: read metering windows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w MeterWindow
		var node, disc, topics, ips string
		if err := rows.Scan(&w.DeviceID, &w.Start, &node, &w.Seconds, &w.Attempts, &w.Connects, &w.Takeovers, &w.AuthFailures,
			&w.MsgsIn, &w.MsgsOut, &w.BytesIn, &w.BytesOut, &w.Reports, &w.BadReports, &disc, &topics, &ips, &w.RevokedAttempts); err != nil {
			return fmt.Errorf("store: read metering windows: %w", err)
		}
		w.Start = w.Start.UTC()
		if err := json.Unmarshal([]byte(ips), &w.SourceIPs); err != nil {
			return fmt.Errorf("store: decode metering window of %s: %w", w.DeviceID, err)
		}
		if err := json.Unmarshal([]byte(disc), &w.Disconnects); err != nil {
			return fmt.Errorf("store: decode metering window of %s: %w", w.DeviceID, err)
		}
		if err := fn(node, w); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read metering windows: %w", err)
	}
	return nil
}

// BirthRequest is a provisioning request a birth certificate made.
type BirthRequest struct {
	DeviceID  string
	Requester string
	Kind      string
	Status    string
	CreatedAt time.Time
}

// BirthRequests returns the provisioning requests made with birth
// certificates since the given time.
func (s *Store) BirthRequests(ctx context.Context, since time.Time) ([]BirthRequest, error) {
	rows, err := s.query(ctx, "SELECT device_id, requester, kind, status, created_at FROM provisioning_requests WHERE requester LIKE 'birth:%' AND created_at >= ?", since.UTC())
	if err != nil {
		return nil, fmt.Errorf("store: read provisioning requests: %w", err)
	}
	return scanAll(rows, func(r scanner) (*BirthRequest, error) {
		var b BirthRequest
		if err := r.Scan(&b.DeviceID, &b.Requester, &b.Kind, &b.Status, &b.CreatedAt); err != nil {
			return nil, err
		}
		b.CreatedAt = b.CreatedAt.UTC()
		return &b, nil
	})
}

// ChainHead is where a history chain's head is recorded: on the device
// row, or in fleet_head for the fleet audit log.
type ChainHead struct {
	Seq  int64
	Hash string
}

// ChainHeads returns the recorded head of every chain by subject.
func (s *Store) ChainHeads(ctx context.Context) (map[string]ChainHead, error) {
	out := map[string]ChainHead{}
	rows, err := s.query(ctx, "SELECT id, head_seq, head_hash FROM devices UNION ALL SELECT ?, seq, hash FROM fleet_head", fleet.FleetSubject)
	if err != nil {
		return nil, fmt.Errorf("store: read chain heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var subject string
		var h ChainHead
		if err := rows.Scan(&subject, &h.Seq, &h.Hash); err != nil {
			return nil, fmt.Errorf("store: read chain heads: %w", err)
		}
		out[subject] = h
	}
	return out, rows.Err()
}

// EachChain calls fn with every history chain, events in order. Chains
// come one at a time, so memory holds the longest chain, not all of them.
func (s *Store) EachChain(ctx context.Context, fn func(subject string, events []fleet.Event) error) error {
	rows, err := s.query(ctx, "SELECT subject, seq, type, actor, at, data, prev_hash, hash FROM events ORDER BY subject, seq")
	if err != nil {
		return fmt.Errorf("store: read histories: %w", err)
	}
	defer rows.Close()
	var cur []fleet.Event
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		err := fn(cur[0].Subject, cur)
		cur = cur[:0]
		return err
	}
	for rows.Next() {
		var e fleet.Event
		var data sql.NullString
		if err := rows.Scan(&e.Subject, &e.Seq, &e.Type, &e.Actor, &e.At, &data, &e.PrevHash, &e.Hash); err != nil {
			return fmt.Errorf("store: read histories: %w", err)
		}
		e.At = e.At.UTC()
		if data.Valid {
			e.Data = []byte(data.String)
		}
		if len(cur) > 0 && cur[0].Subject != e.Subject {
			if err := flush(); err != nil {
				return err
			}
		}
		cur = append(cur, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read histories: %w", err)
	}
	return flush()
}
