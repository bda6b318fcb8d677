package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Incident groups alerts, the actions taken on them, and notes.
type Incident struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	UpdatedAt time.Time  `json:"updatedAt"`
	ClosedAt  *time.Time `json:"closedAt,omitempty"`
	AlertIDs  []string   `json:"alertIds"`
	Notes     []struct {
		ID     string    `json:"id"`
		Author string    `json:"author"`
		Body   string    `json:"body"`
		At     time.Time `json:"at"`
	} `json:"notes"`
}

// IncidentUpdate links alerts, adds a note and closes or reopens an
// incident; each part optional.
type IncidentUpdate struct {
	AlertIDs []string `json:"alertIds,omitempty"`
	Note     string   `json:"note,omitempty"`
	State    string   `json:"state,omitempty"`
}

// CreateIncident opens an incident linking alerts.
func (c *Client) CreateIncident(ctx context.Context, title string, alertIDs []string) (*Incident, error) {
	return fetch[Incident](ctx, c, call{method: http.MethodPost, path: "/v1/incidents",
		body: map[string]any{"title": title, "alertIds": alertIDs}})
}

// UpdateIncident changes an incident.
func (c *Client) UpdateIncident(ctx context.Context, id string, u IncidentUpdate) (*Incident, error) {
	return fetch[Incident](ctx, c, call{method: http.MethodPatch, path: "/v1/incidents/" + url.PathEscape(id), body: u})
}

// ListIncidents lists incidents, newest first; state may be empty, open
// or closed.
func (c *Client) ListIncidents(ctx context.Context, state string) ([]Incident, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	var out struct {
		Items []Incident `json:"items"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/incidents", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// IncidentReport is an incident's export: the incident, its alerts, the
// actions taken on them.
type IncidentReport struct {
	Incident   Incident      `json:"incident"`
	Alerts     []Alert       `json:"alerts"`
	Actions    []AlertAction `json:"actions"`
	ExportedAt time.Time     `json:"exportedAt"`
}

// IncidentReport reads an incident's export as JSON.
func (c *Client) IncidentReport(ctx context.Context, id string) (*IncidentReport, error) {
	return fetch[IncidentReport](ctx, c, call{method: http.MethodGet, path: "/v1/incidents/" + url.PathEscape(id)})
}

// IncidentMarkdown reads an incident's export as Markdown.
func (c *Client) IncidentMarkdown(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/incidents/" + url.PathEscape(id),
		query: url.Values{"format": {"md"}}, accept: "text/markdown"}, &b); err != nil {
		return nil, err
	}
	return b, nil
}

// Webhook receives alert events, signed (docs/detection.md).
type Webhook struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	MinSeverity string    `json:"minSeverity"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy"`
}

// CreateWebhook registers a webhook; secret signs every delivery.
func (c *Client) CreateWebhook(ctx context.Context, rawURL, secret, minSeverity string) (*Webhook, error) {
	return fetch[Webhook](ctx, c, call{method: http.MethodPost, path: "/v1/webhooks",
		body: map[string]string{"url": rawURL, "secret": secret, "minSeverity": minSeverity}})
}

// Webhooks lists the webhooks.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Items []Webhook `json:"items"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks"}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// DeleteWebhook deletes a webhook.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/webhooks/" + url.PathEscape(id)}, nil)
}
