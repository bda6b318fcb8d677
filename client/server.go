package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// Principal is who the server takes the caller to be.
type Principal struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Factory string `json:"factory,omitempty"`
}

// Whoami returns the token the client authenticates with, as the server
// sees it. It is the cheapest way to check a token.
func (c *Client) Whoami(ctx context.Context) (*Principal, error) {
	return fetch[Principal](ctx, c, call{method: http.MethodGet, path: "/v1/whoami"})
}

// Health checks that the server answers. It needs no token.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, call{method: http.MethodGet, path: "/v1/healthz"}, nil)
}

// OpenAPI returns the server's OpenAPI 3.0 document. It needs no token.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var raw []byte
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/openapi.json"}, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}
