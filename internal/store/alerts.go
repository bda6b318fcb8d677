package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Alert states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// Alert is a detection rule that fired on a device. Alerts with the same
// DedupKey that are not resolved are one alert: a rule that keeps firing
// raises Hits and LastSeen.
type Alert struct {
	ID         string          `json:"id"`
	DedupKey   string          `json:"dedupKey"`
	RuleID     string          `json:"ruleId"`
	DeviceID   string          `json:"deviceId"`
	Severity   string          `json:"severity"`
	State      string          `json:"state"`
	Summary    string          `json:"summary"`
	Evidence   json.RawMessage `json:"evidence"`
	Actions    []string        `json:"actions"`
	Hits       int64           `json:"hits"`
	Node       string          `json:"node,omitempty"`
	FirstSeen  time.Time       `json:"firstSeen"`
	LastSeen   time.Time       `json:"lastSeen"`
	AckedAt    *time.Time      `json:"acknowledgedAt,omitempty"`
	AckedBy    string          `json:"acknowledgedBy,omitempty"`
	ResolvedAt *time.Time      `json:"resolvedAt,omitempty"`
	ResolvedBy string          `json:"resolvedBy,omitempty"`
	Resolution string          `json:"resolution,omitempty"`
}

const alertCols = "id, dedup_key, rule_id, device_id, severity, state, summary, evidence, actions, hits, node, first_seen, last_seen, acked_at, acked_by, resolved_at, resolved_by, resolution"

func scanAlert(r scanner) (*Alert, error) {
	var a Alert
	var evidence, actions string
	var acked, resolved sql.NullTime
	if err := r.Scan(&a.ID, &a.DedupKey, &a.RuleID, &a.DeviceID, &a.Severity, &a.State, &a.Summary, &evidence, &actions,
		&a.Hits, &a.Node, &a.FirstSeen, &a.LastSeen, &acked, &a.AckedBy, &resolved, &a.ResolvedBy, &a.Resolution); err != nil {
		return nil, fmt.Errorf("store: read alert: %w", err)
	}
	a.Evidence = json.RawMessage(evidence)
	if err := json.Unmarshal([]byte(actions), &a.Actions); err != nil {
		return nil, fmt.Errorf("store: decode actions of alert %s: %w", a.ID, err)
	}
	if acked.Valid {
		a.AckedAt = &acked.Time
	}
	if resolved.Valid {
		a.ResolvedAt = &resolved.Time
	}
	return &a, nil
}

// AlertEvent is an alert as delivered to webhooks and streams.
type AlertEvent struct {
	// Event is alert.opened, alert.acknowledged or alert.resolved.
	Event string `json:"event"`
	Alert Alert  `json:"alert"`
}

// Alert events.
const (
	EventAlertOpened       = "alert.opened"
	EventAlertAcknowledged = "alert.acknowledged"
	EventAlertResolved     = "alert.resolved"
)

// severityRank orders severities for webhook filters.
func severityRank(s string) int {
	switch s {
	case "low":
		return 1
	case "medium":
		return 2
	case "high":
		return 3
	case "critical":
		return 4
	}
	return 0
}

// RaiseAlert records a firing: it updates the live alert with a's dedup
// key (more hits, the latest evidence, the higher severity) or opens a new
// one, and queues the new alert for every webhook whose minimum severity
// it meets, all in one transaction. It reports whether the alert is new.
func (s *Store) RaiseAlert(ctx context.Context, a Alert) (*Alert, bool, error) {
	if a.DedupKey == "" || a.RuleID == "" || a.DeviceID == "" || severityRank(a.Severity) == 0 {
		return nil, false, errors.New("store: an alert needs a dedup key, a rule, a device and a severity")
	}
	if len(a.Evidence) == 0 {
		a.Evidence = json.RawMessage("{}")
	}
	if a.Actions == nil {
		a.Actions = []string{}
	}
	actions, err := json.Marshal(a.Actions)
	if err != nil {
		return nil, false, err
	}
	var out *Alert
	var created bool
	// Two nodes may open the same alert at once; the unique index lets one
	// win, and the other updates what it opened.
	for attempt := 0; ; attempt++ {
		err = s.inTx(ctx, func(t *txn) error {
			now := s.clock()
			rows, err := t.query(ctx, "SELECT "+alertCols+" FROM alerts WHERE dedup_key = ? AND state <> ?", a.DedupKey, AlertResolved)
			if err != nil {
				return fmt.Errorf("store: find alert %s: %w", a.DedupKey, err)
			}
			live, err := scanAll(rows, scanAlert)
			if err != nil {
				return err
			}
			if len(live) > 0 {
				cur := live[0]
				sev := cur.Severity
				if severityRank(a.Severity) > severityRank(sev) {
					sev = a.Severity
				}
				if _, err := t.exec(ctx, "UPDATE alerts SET hits = hits + 1, last_seen = ?, evidence = ?, severity = ? WHERE id = ?",
					now, string(a.Evidence), sev, cur.ID); err != nil {
					return fmt.Errorf("store: update alert %s: %w", cur.ID, err)
				}
				cur.Hits++
				cur.LastSeen, cur.Evidence, cur.Severity = now, a.Evidence, sev
				out, created = &cur, false
				return nil
			}
			n := a
			n.ID = fleet.NewID("alr_", now)
			n.State, n.Hits, n.FirstSeen, n.LastSeen = AlertOpen, 1, now, now
			n.AckedAt, n.ResolvedAt, n.AckedBy, n.ResolvedBy, n.Resolution = nil, nil, "", "", ""
			if _, err := t.exec(ctx, "INSERT INTO alerts ("+alertCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', NULL, '', '')",
				n.ID, n.DedupKey, n.RuleID, n.DeviceID, n.Severity, n.State, n.Summary, string(n.Evidence), string(actions),
				n.Hits, n.Node, n.FirstSeen, n.LastSeen); err != nil {
				return err
			}
			if err := queueDeliveries(ctx, t, AlertEvent{Event: EventAlertOpened, Alert: n}, now); err != nil {
				return err
			}
			out, created = &n, true
			return nil
		})
		if err != nil && attempt == 0 && s.d.isUniqueViolation(err) {
			continue
		}
		break
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: raise alert %s: %w", a.DedupKey, err)
	}
	return out, created, nil
}

// AlertFilter narrows ListAlerts; empty fields match everything.
type AlertFilter struct {
	State    string
	DeviceID string
	RuleID   string
	Severity string
}

// ListAlerts returns up to limit alerts, newest first, that match f and
// come after cursor (the nextCursor of the previous page), and the cursor
// of the next page ("" at the end).
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter, cursor string, limit int) ([]Alert, string, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"state", f.State}, {"device_id", f.DeviceID}, {"rule_id", f.RuleID}, {"severity", f.Severity}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if cursor != "" {
		where = append(where, "id < ?")
		args = append(args, cursor)
	}
	q := "SELECT " + alertCols + " FROM alerts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list alerts: %w", err)
	}
	out, err := scanAll(rows, scanAlert)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// GetAlert returns an alert or ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (*Alert, error) {
	rows, err := s.query(ctx, "SELECT "+alertCols+" FROM alerts WHERE id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("store: read alert %s: %w", id, err)
	}
	as, err := scanAll(rows, scanAlert)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, fmt.Errorf("store: alert %s: %w", id, ErrNotFound)
	}
	return &as[0], nil
}

// ErrAlertState means an alert is not in a state that allows the change.
var ErrAlertState = errors.New("alert state does not allow this")

// AcknowledgeAlert moves an open alert to acknowledged. Acknowledging an
// acknowledged alert changes nothing; a resolved one is ErrAlertState.
func (s *Store) AcknowledgeAlert(ctx context.Context, id, actor string) (*Alert, error) {
	return s.changeAlert(ctx, id, EventAlertAcknowledged, func(a *Alert, now time.Time) (string, []any, error) {
		switch a.State {
		case AlertAcknowledged:
			return "", nil, nil
		case AlertResolved:
			return "", nil, fmt.Errorf("alert %s is resolved: %w", id, ErrAlertState)
		}
		a.State, a.AckedAt, a.AckedBy = AlertAcknowledged, &now, actor
		return "state = ?, acked_at = ?, acked_by = ?", []any{a.State, now, actor}, nil
	})
}

// ResolveAlert resolves an alert with a resolution note. Resolving a
// resolved alert is ErrAlertState. A rule that fires again afterwards
// opens a new alert.
func (s *Store) ResolveAlert(ctx context.Context, id, actor, resolution string) (*Alert, error) {
	return s.changeAlert(ctx, id, EventAlertResolved, func(a *Alert, now time.Time) (string, []any, error) {
		if a.State == AlertResolved {
			return "", nil, fmt.Errorf("alert %s is resolved already: %w", id, ErrAlertState)
		}
		a.State, a.ResolvedAt, a.ResolvedBy, a.Resolution = AlertResolved, &now, actor, resolution
		return "state = ?, resolved_at = ?, resolved_by = ?, resolution = ?", []any{a.State, now, actor, resolution}, nil
	})
}

func (s *Store) changeAlert(ctx context.Context, id, event string, fn func(*Alert, time.Time) (string, []any, error)) (*Alert, error) {
	var out *Alert
	err := s.inTx(ctx, func(t *txn) error {
		rows, err := t.query(ctx, "SELECT "+alertCols+" FROM alerts a WHERE id = ?"+t.d.forUpdate("a"), id)
		if err != nil {
			return fmt.Errorf("store: read alert %s: %w", id, err)
		}
		as, err := scanAll(rows, scanAlert)
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return fmt.Errorf("store: alert %s: %w", id, ErrNotFound)
		}
		a := as[0]
		now := s.clock()
		set, args, err := fn(&a, now)
		if err != nil || set == "" {
			out = &a
			return err
		}
		if _, err := t.exec(ctx, "UPDATE alerts SET "+set+" WHERE id = ?", append(args, id)...); err != nil {
			return fmt.Errorf("store: update alert %s: %w", id, err)
		}
		out = &a
		return queueDeliveries(ctx, t, AlertEvent{Event: event, Alert: a}, now)
	})
	return out, err
}

// AlertAction is a mitigation applied because of an alert.
type AlertAction struct {
	ID         string     `json:"id"`
	AlertID    string     `json:"alertId"`
	DeviceID   string     `json:"deviceId"`
	Action     string     `json:"action"`
	Status     string     `json:"status"`
	Detail     string     `json:"detail,omitempty"`
	Auto       bool       `json:"auto"`
	Actor      string     `json:"actor"`
	At         time.Time  `json:"at"`
	RevertedAt *time.Time `json:"revertedAt,omitempty"`
	RevertedBy string     `json:"revertedBy,omitempty"`
}

// Action statuses.
const (
	ActionApplied  = "applied"
	ActionFailed   = "failed"
	ActionReverted = "reverted"
)

const alertActionCols = "id, alert_id, device_id, action, status, detail, auto, actor, at, reverted_at, reverted_by"

func scanAlertAction(r scanner) (*AlertAction, error) {
	var a AlertAction
	var auto int64
	var reverted sql.NullTime
	if err := r.Scan(&a.ID, &a.AlertID, &a.DeviceID, &a.Action, &a.Status, &a.Detail, &auto, &a.Actor, &a.At, &reverted, &a.RevertedBy); err != nil {
		return nil, fmt.Errorf("store: read alert action: %w", err)
	}
	a.Auto = auto != 0
	if reverted.Valid {
		a.RevertedAt = &reverted.Time
	}
	return &a, nil
}

// RecordAlertAction records a mitigation's outcome. It sets ID and At.
func (s *Store) RecordAlertAction(ctx context.Context, a AlertAction) (*AlertAction, error) {
	a.At = s.clock()
	a.ID = fleet.NewID("act_", a.At)
	auto := 0
	if a.Auto {
		auto = 1
	}
	err := s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "INSERT INTO alert_actions ("+alertActionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '')",
			a.ID, a.AlertID, a.DeviceID, a.Action, a.Status, a.Detail, auto, a.Actor, a.At)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: record action %s of alert %s: %w", a.Action, a.AlertID, err)
	}
	return &a, nil
}

// MarkActionReverted marks an applied action reverted, or returns
// ErrAlertState when it was not applied.
func (s *Store) MarkActionReverted(ctx context.Context, id, actor string) (*AlertAction, error) {
	now := s.clock()
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE alert_actions SET status = ?, reverted_at = ?, reverted_by = ? WHERE id = ? AND status = ?",
			ActionReverted, now, actor, id, ActionApplied)
		if err != nil {
			return fmt.Errorf("store: revert action %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("action %s is not an applied action: %w", id, ErrAlertState)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetAlertAction(ctx, id)
}

// GetAlertAction returns an action or ErrNotFound.
func (s *Store) GetAlertAction(ctx context.Context, id string) (*AlertAction, error) {
	rows, err := s.query(ctx, "SELECT "+alertActionCols+" FROM alert_actions WHERE id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("store: read action %s: %w", id, err)
	}
	as, err := scanAll(rows, scanAlertAction)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, fmt.Errorf("store: action %s: %w", id, ErrNotFound)
	}
	return &as[0], nil
}

// AlertActions lists the actions taken on an alert, oldest first.
func (s *Store) AlertActions(ctx context.Context, alertID string) ([]AlertAction, error) {
	rows, err := s.query(ctx, "SELECT "+alertActionCols+" FROM alert_actions WHERE alert_id = ? ORDER BY id", alertID)
	if err != nil {
		return nil, fmt.Errorf("store: list actions of alert %s: %w", alertID, err)
	}
	return scanAll(rows, scanAlertAction)
}
