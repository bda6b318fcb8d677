package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Webhook receives alert events as JSON signed with its secret.
type Webhook struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Secret      string    `json:"-"`
	MinSeverity string    `json:"minSeverity"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy"`
}

// Webhook events in the fleet audit log.
const (
	EventWebhookCreated = "webhook.created"
	EventWebhookDeleted = "webhook.deleted"
)

const webhookCols = "id, url, secret, min_severity, created_at, created_by"

func scanWebhook(r scanner) (*Webhook, error) {
	var w Webhook
	if err := r.Scan(&w.ID, &w.URL, &w.Secret, &w.MinSeverity, &w.CreatedAt, &w.CreatedBy); err != nil {
		return nil, fmt.Errorf("store: read webhook: %w", err)
	}
	return &w, nil
}

// CreateWebhook stores a webhook (setting ID, CreatedAt and CreatedBy) and
// records it, without its secret, in the fleet audit log.
func (s *Store) CreateWebhook(ctx context.Context, w *Webhook, actor string) error {
	if w.URL == "" || w.Secret == "" || severityRank(w.MinSeverity) == 0 {
		return &fleet.FieldError{Field: "webhook", Message: "needs a URL, a secret and a minimum severity"}
	}
	w.CreatedAt, w.CreatedBy = s.clock(), actor
	w.ID = fleet.NewID("whk_", w.CreatedAt)
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO webhooks ("+webhookCols+") VALUES (?, ?, ?, ?, ?, ?)",
			w.ID, w.URL, w.Secret, w.MinSeverity, w.CreatedAt, w.CreatedBy); err != nil {
			return fmt.Errorf("store: create webhook: %w", err)
		}
		data, err := eventData(map[string]any{"id": w.ID, "url": w.URL, "minSeverity": w.MinSeverity})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventWebhookCreated, actor, data)
	})
}

// Webhooks lists the webhooks, oldest first.
func (s *Store) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.query(ctx, "SELECT "+webhookCols+" FROM webhooks ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: list webhooks: %w", err)
	}
	return scanAll(rows, scanWebhook)
}

// GetWebhook returns a webhook or ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	w, err := scanWebhook(s.queryRow(ctx, "SELECT "+webhookCols+" FROM webhooks WHERE id = ?", id))
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: webhook %s: %w", id, ErrNotFound)
		}
		return nil, err
	}
	return w, nil
}

// DeleteWebhook removes a webhook and its pending deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "DELETE FROM webhooks WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("store: delete webhook %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: webhook %s: %w", id, ErrNotFound)
		}
		if _, err := t.exec(ctx, "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND state = ?", id, DeliveryPending); err != nil {
			return fmt.Errorf("store: delete deliveries of webhook %s: %w", id, err)
		}
		data, err := eventData(map[string]any{"id": id})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventWebhookDeleted, actor, data)
	})
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one alert event to deliver to one webhook.
type Delivery struct {
	ID        string     `json:"id"`
	WebhookID string     `json:"webhookId"`
	AlertID   string     `json:"alertId"`
	Event     string     `json:"event"`
	Payload   []byte     `json:"-"`
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	NextAt    time.Time  `json:"nextAt"`
	LastError string     `json:"lastError,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	Delivered *time.Time `json:"deliveredAt,omitempty"`
	// URL and Secret come from the webhook.
	URL    string `json:"-"`
	Secret string `json:"-"`
}

// queueDeliveries queues ev for every webhook whose minimum severity the
// alert meets, inside t.
func queueDeliveries(ctx context.Context, t *txn, ev AlertEvent, now time.Time) error {
	rows, err := t.query(ctx, "SELECT "+webhookCols+" FROM webhooks")
	if err != nil {
		return fmt.Errorf("store: read webhooks: %w", err)
	}
	hooks, err := scanAll(rows, scanWebhook)
	if err != nil {
		return err
	}
	var payload []byte
	for _, h := range hooks {
		if severityRank(ev.Alert.Severity) < severityRank(h.MinSeverity) {
			continue
		}
		if payload == nil {
			if payload, err = json.Marshal(ev); err != nil {
				return err
			}
		}
		if _, err := t.exec(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, alert_id, event, payload, state, attempts, next_at, claimed_until, last_error, created_at, delivered_at)
			VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, '', ?, NULL)`,
			fleet.NewID("dlv_", now), h.ID, ev.Alert.ID, ev.Event, string(payload), DeliveryPending, now, now, now); err != nil {
			return fmt.Errorf("store: queue webhook delivery: %w", err)
		}
	}
	return nil
}

// ClaimDeliveries claims up to limit pending deliveries that are due, for
// lease, so that of several nodes only one sends each.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]Delivery, error) {
	var out []Delivery
	err := s.inTx(ctx, func(t *txn) error {
		now := s.clock()
		rows, err := t.query(ctx, `SELECT d.id, d.webhook_id, d.alert_id, d.event, d.payload, d.state, d.attempts, d.next_at, d.last_error, d.created_at, w.url, w.secret
			FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.state = ? AND d.next_at <= ? AND d.claimed_until <= ? ORDER BY d.next_at LIMIT ?`+t.d.forUpdate("d")+skipLocked(t.d),
			DeliveryPending, now, now, limit)
		if err != nil {
			return fmt.Errorf("store: claim deliveries: %w", err)
		}
		out, err = scanAll(rows, func(r scanner) (*Delivery, error) {
			var d Delivery
			var payload string
			if err := r.Scan(&d.ID, &d.WebhookID, &d.AlertID, &d.Event, &payload, &d.State, &d.Attempts, &d.NextAt, &d.LastError, &d.CreatedAt, &d.URL, &d.Secret); err != nil {
				return nil, fmt.Errorf("store: read delivery: %w", err)
			}
			d.Payload = []byte(payload)
			return &d, nil
		})
		if err != nil {
			return err
		}
		for _, d := range out {
			if _, err := t.exec(ctx, "UPDATE webhook_deliveries SET claimed_until = ? WHERE id = ?", now.Add(lease), d.ID); err != nil {
				return fmt.Errorf("store: claim delivery %s: %w", d.ID, err)
			}
		}
		return nil
	})
	return out, err
}

func skipLocked(d dialect) string {
	if d.name() == "postgres" {
		return " SKIP LOCKED"
	}
	return ""
}

// FinishDelivery records an attempt: delivered, or failed with errText and
// retried at next (or given up when next is nil).
func (s *Store) FinishDelivery(ctx context.Context, id string, delivered bool, errText string, next *time.Time) error {
	now := s.clock()
	state, nextAt := DeliveryPending, now
	var deliveredAt any
	switch {
	case delivered:
		state, deliveredAt = DeliveryDelivered, now
	case next == nil:
		state = DeliveryFailed
	default:
		nextAt = *next
	}
	return s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_at = ?, claimed_until = ?, last_error = ?, delivered_at = ? WHERE id = ?",
			state, nextAt, now, errText, deliveredAt, id)
		if err != nil {
			return fmt.Errorf("store: record delivery %s: %w", id, err)
		}
		return nil
	})
}

// Deliveries lists a webhook's deliveries, newest first, at most limit.
func (s *Store) Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error) {
	rows, err := s.query(ctx, `SELECT id, webhook_id, alert_id, event, state, attempts, next_at, last_error, created_at, delivered_at
		FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list deliveries: %w", err)
	}
	return scanAll(rows, func(r scanner) (*Delivery, error) {
		var d Delivery
		var at sql.NullTime
		if err := r.Scan(&d.ID, &d.WebhookID, &d.AlertID, &d.Event, &d.State, &d.Attempts, &d.NextAt, &d.LastError, &d.CreatedAt, &at); err != nil {
			return nil, fmt.Errorf("store: read delivery: %w", err)
		}
		if at.Valid {
			d.Delivered = &at.Time
		}
		return &d, nil
	})
}
