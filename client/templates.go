package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// TemplateRecord is one version of a provisioning template. Template is
// the document as the server stored it, defaults filled in
// (docs/provisioning.md describes its fields).
type TemplateRecord struct {
	Name      string          `json:"name"`
	Version   int64           `json:"version"`
	Template  json.RawMessage `json:"template"`
	CreatedAt time.Time       `json:"createdAt"`
	CreatedBy string          `json:"createdBy"`
}

// CreateTemplate stores a new provisioning template, given as a JSON
// document.
func (c *Client) CreateTemplate(ctx context.Context, doc json.RawMessage) (*TemplateRecord, error) {
	return fetch[TemplateRecord](ctx, c, call{method: http.MethodPost, path: "/v1/templates", body: doc})
}

// UpdateTemplate stores doc as the next version of template name.
func (c *Client) UpdateTemplate(ctx context.Context, name string, doc json.RawMessage) (*TemplateRecord, error) {
	return fetch[TemplateRecord](ctx, c, call{method: http.MethodPut, path: "/v1/templates/" + url.PathEscape(name), body: doc})
}

// GetTemplate returns the newest version of a template.
func (c *Client) GetTemplate(ctx context.Context, name string) (*TemplateRecord, error) {
	return fetch[TemplateRecord](ctx, c, call{method: http.MethodGet, path: "/v1/templates/" + url.PathEscape(name)})
}

// ListTemplates returns the newest version of every template.
func (c *Client) ListTemplates(ctx context.Context) ([]TemplateRecord, error) {
	return list[TemplateRecord](ctx, c, "/v1/templates")
}

// DeleteTemplate deletes a template; certificates issued under it keep
// naming it.
func (c *Client) DeleteTemplate(ctx context.Context, name string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/templates/" + url.PathEscape(name)}, nil)
}
