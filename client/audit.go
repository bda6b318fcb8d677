package client

import (
	"context"
	"net/http"
)

// AuditLog returns the fleet audit log (admin actions that concern no single
// device, such as token changes), oldest event first.
func (c *Client) AuditLog(ctx context.Context) ([]Event, error) {
	return list[Event](ctx, c, "/v1/audit-log")
}

// VerifyAuditLog asks the server to recompute the audit log's hash chain.
func (c *Client) VerifyAuditLog(ctx context.Context) (*Verification, error) {
	return fetch[Verification](ctx, c, call{method: http.MethodGet, path: "/v1/audit-log/verify"})
}
