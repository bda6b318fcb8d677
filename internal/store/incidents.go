package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Incident states.
const (
	IncidentOpen   = "open"
	IncidentClosed = "closed"
)

// Incident groups alerts, the actions taken on them, and notes for an
// investigation.
type Incident struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	UpdatedAt time.Time  `json:"updatedAt"`
	ClosedAt  *time.Time `json:"closedAt,omitempty"`
	// AlertIDs are the linked alerts, in the order they were added.
	AlertIDs []string       `json:"alertIds"`
	Notes    []IncidentNote `json:"notes"`
}

// IncidentNote is a note on an incident.
type IncidentNote struct {
	ID     string    `json:"id"`
	Author string    `json:"author"`
	Body   string    `json:"body"`
	At     time.Time `json:"at"`
}

// EventIncidentCreated records an incident in the fleet audit log.
const EventIncidentCreated = "incident.created"

// CreateIncident opens an incident linking alertIDs (each must exist).
func (s *Store) CreateIncident(ctx context.Context, title string, alertIDs []string, actor string) (*Incident, error) {
	now := s.clock()
	in := &Incident{ID: fleet.NewID("inc_", now), Title: title, State: IncidentOpen, CreatedAt: now, CreatedBy: actor, UpdatedAt: now,
		AlertIDs: []string{}, Notes: []IncidentNote{}}
	err := s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO incidents (id, title, state, created_at, created_by, updated_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
			in.ID, title, in.State, now, actor, now); err != nil {
			return fmt.Errorf("store: create incident: %w", err)
		}
		for _, a := range alertIDs {
			if err := linkAlert(ctx, t, in.ID, a, actor, now); err != nil {
				return err
			}
		}
		data, err := eventData(map[string]any{"id": in.ID, "title": title, "alerts": alertIDs})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventIncidentCreated, actor, data)
	})
	if err != nil {
		return nil, err
	}
	return s.GetIncident(ctx, in.ID)
}

func linkAlert(ctx context.Context, t *txn, incident, alert, actor string, now time.Time) error {
	var one int
	if err := t.queryRow(ctx, "SELECT 1 FROM alerts WHERE id = ?", alert).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: alert %s: %w", alert, ErrNotFound)
		}
		return fmt.Errorf("store: read alert %s: %w", alert, err)
	}
	if _, err := t.exec(ctx, "INSERT INTO incident_alerts (incident_id, alert_id, added_at, added_by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
		incident, alert, now, actor); err != nil {
		return fmt.Errorf("store: link alert %s: %w", alert, err)
	}
	return nil
}

// UpdateIncident links more alerts, adds a note (when note is not empty)
// and closes or reopens the incident (when state is not empty), in one
// transaction. An unknown incident or alert is ErrNotFound.
func (s *Store) UpdateIncident(ctx context.Context, id string, alertIDs []string, note, state, actor string) (*Incident, error) {
	err := s.inTx(ctx, func(t *txn) error {
		now := s.clock()
		var cur string
		if err := t.queryRow(ctx, "SELECT state FROM incidents i WHERE id = ?"+t.d.forUpdate("i"), id).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: incident %s: %w", id, ErrNotFound)
			}
			return fmt.Errorf("store: read incident %s: %w", id, err)
		}
		for _, a := range alertIDs {
			if err := linkAlert(ctx, t, id, a, actor, now); err != nil {
				return err
			}
		}
		if note != "" {
			if _, err := t.exec(ctx, "INSERT INTO incident_notes (id, incident_id, author, body, at) VALUES (?, ?, ?, ?, ?)",
				fleet.NewID("note_", now), id, actor, note, now); err != nil {
				return fmt.Errorf("store: add note to incident %s: %w", id, err)
			}
		}
		var closed any
		if state == "" {
			state = cur
		}
		if state == IncidentClosed {
			closed = now
		}
		if _, err := t.exec(ctx, "UPDATE incidents SET state = ?, updated_at = ?, closed_at = ? WHERE id = ?", state, now, closed, id); err != nil {
			return fmt.Errorf("store: update incident %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetIncident(ctx, id)
}

// GetIncident returns an incident with its alert ids and notes, or
// ErrNotFound.
func (s *Store) GetIncident(ctx context.Context, id string) (*Incident, error) {
	in, err := scanIncident(s.queryRow(ctx, "SELECT id, title, state, created_at, created_by, updated_at, closed_at FROM incidents WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: incident %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, "SELECT alert_id FROM incident_alerts WHERE incident_id = ? ORDER BY added_at, alert_id", id)
	if err != nil {
		return nil, fmt.Errorf("store: read alerts of incident %s: %w", id, err)
	}
	ids, err := scanAll(rows, func(r scanner) (*string, error) {
		var a string
		return &a, r.Scan(&a)
	})
	if err != nil {
		return nil, fmt.Errorf("store: read alerts of incident %s: %w", id, err)
	}
	in.AlertIDs = ids
	rows, err = s.query(ctx, "SELECT id, author, body, at FROM incident_notes WHERE incident_id = ? ORDER BY id", id)
	if err != nil {
		return nil, fmt.Errorf("store: read notes of incident %s: %w", id, err)
	}
	in.Notes, err = scanAll(rows, func(r scanner) (*IncidentNote, error) {
		var n IncidentNote
		return &n, r.Scan(&n.ID, &n.Author, &n.Body, &n.At)
	})
	if err != nil {
		return nil, fmt.Errorf("store: read notes of incident %s: %w", id, err)
	}
	return in, nil
}

func scanIncident(r scanner) (*Incident, error) {
	var in Incident
	var closed sql.NullTime
	if err := r.Scan(&in.ID, &in.Title, &in.State, &in.CreatedAt, &in.CreatedBy, &in.UpdatedAt, &closed); err != nil {
		return nil, fmt.Errorf("store: read incident: %w", err)
	}
	if closed.Valid {
		in.ClosedAt = &closed.Time
	}
	in.AlertIDs, in.Notes = []string{}, []IncidentNote{}
	return &in, nil
}

// ListIncidents lists incidents, newest first, optionally by state.
func (s *Store) ListIncidents(ctx context.Context, state string, limit int) ([]Incident, error) {
	q := "SELECT id, title, state, created_at, created_by, updated_at, closed_at FROM incidents"
	args := []any{}
	if state != "" {
		q += " WHERE state = ?"
		args = append(args, state)
	}
	rows, err := s.query(ctx, q+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list incidents: %w", err)
	}
	return scanAll(rows, scanIncident)
}
