package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// ProvisioningRequest is a provisioning attempt, as listed while it waits
// for approval.
type ProvisioningRequest struct {
	ID              string          `json:"id"`
	Requester       string          `json:"requester"`
	CSRSHA256       string          `json:"csrSha256"`
	DeviceID        string          `json:"deviceId"`
	Kind            string          `json:"kind"` // provision, reprovision or renew
	Template        string          `json:"template"`
	TemplateVersion int64           `json:"templateVersion"`
	Status          string          `json:"status"` // pending, approved, rejected or issued
	Parameters      json.RawMessage `json:"parameters,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	CreatedAt       time.Time       `json:"createdAt"`
	DecidedBy       string          `json:"decidedBy,omitempty"`
	DecidedAt       *time.Time      `json:"decidedAt,omitempty"`
}

// Decision is the outcome of approving or rejecting one request; Error
// says why that one was not decided.
type Decision struct {
	ID     string `json:"id"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ListApprovals returns the requests waiting for approval, oldest first.
func (c *Client) ListApprovals(ctx context.Context) ([]ProvisioningRequest, error) {
	return list[ProvisioningRequest](ctx, c, "/v1/approvals")
}

// Approve approves requests; each device gets its certificate on its next
// retry.
func (c *Client) Approve(ctx context.Context, ids []string, reason string) ([]Decision, error) {
	return c.decide(ctx, "/v1/approvals/approve", ids, reason)
}

// Reject rejects requests; reason is required and recorded.
func (c *Client) Reject(ctx context.Context, ids []string, reason string) ([]Decision, error) {
	return c.decide(ctx, "/v1/approvals/reject", ids, reason)
}

func (c *Client) decide(ctx context.Context, path string, ids []string, reason string) ([]Decision, error) {
	body := struct {
		IDs    []string `json:"ids"`
		Reason string   `json:"reason,omitempty"`
	}{ids, reason}
	var out items[Decision]
	if err := c.do(ctx, call{method: http.MethodPost, path: path, body: body}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}
