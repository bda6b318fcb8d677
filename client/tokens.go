package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// The roles a token may have (docs/api-contract.md, "Roles and permissions").
const (
	RoleAdmin        = "admin"
	RoleOperator     = "operator"
	RoleManufacturer = "manufacturer"
	RoleInstaller    = "installer"
	RoleAuditor      = "auditor"
)

// Roles returns every token role, for menus and shell completion.
func Roles() []string {
	return []string{RoleAdmin, RoleOperator, RoleManufacturer, RoleInstaller, RoleAuditor}
}

// Token is an API credential as the server describes it. The secret is
// never part of it: the server keeps only a hash, and shows the secret once
// in CreatedToken.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Factory   string     `json:"factory,omitempty"` // set for manufacturer tokens
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// TokenRequest asks for a new token. Factory is required for, and only
// meaningful to, manufacturer tokens; ExpiresIn zero means it does not expire.
type TokenRequest struct {
	Name      string
	Role      string
	Factory   string
	ExpiresIn time.Duration
}

// MarshalJSON writes ExpiresIn the way the API reads it, as a Go duration
// string such as "720h0m0s".
func (r TokenRequest) MarshalJSON() ([]byte, error) {
	wire := struct {
		Name      string `json:"name,omitempty"`
		Role      string `json:"role"`
		Factory   string `json:"factory,omitempty"`
		ExpiresIn string `json:"expiresIn,omitempty"`
	}{Name: r.Name, Role: r.Role, Factory: r.Factory}
	if r.ExpiresIn != 0 {
		wire.ExpiresIn = r.ExpiresIn.String()
	}
	return json.Marshal(wire)
}

// CreatedToken is a new token and its secret. The secret cannot be
// retrieved again: store it now.
type CreatedToken struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// CreateToken makes a new API token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*CreatedToken, error) {
	return fetch[CreatedToken](ctx, c, call{method: http.MethodPost, path: "/v1/tokens", body: req})
}

// ListTokens returns every token, revoked and expired ones included.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	return list[Token](ctx, c, "/v1/tokens")
}

// RevokeToken revokes a token at once; the revocation is recorded in the
// audit log.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(id)}, nil)
}
