package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// ClaimRequest asks for a claim: a short-lived, single-use credential an
// installer hands to a device that has no birth certificate. ExpiresIn
// zero means the server's default, five minutes.
type ClaimRequest struct {
	Factory   string
	Model     string
	Serial    string
	Template  string
	ExpiresIn time.Duration
}

// MarshalJSON writes ExpiresIn as the Go duration string the API reads.
func (r ClaimRequest) MarshalJSON() ([]byte, error) {
	wire := struct {
		Factory   string `json:"factory"`
		Model     string `json:"model"`
		Serial    string `json:"serial"`
		Template  string `json:"template,omitempty"`
		ExpiresIn string `json:"expiresIn,omitempty"`
	}{r.Factory, r.Model, r.Serial, r.Template, ""}
	if r.ExpiresIn != 0 {
		wire.ExpiresIn = r.ExpiresIn.String()
	}
	return json.Marshal(wire)
}

// Claim is a claim as the server describes it (never its secret).
type Claim struct {
	ID        string     `json:"id"`
	Factory   string     `json:"factory"`
	Model     string     `json:"model"`
	Serial    string     `json:"serial"`
	Template  string     `json:"template,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
}

// CreatedClaim is a new claim and its secret, shown only once.
type CreatedClaim struct {
	Claim  Claim  `json:"claim"`
	Secret string `json:"secret"`
}

// CreateClaim creates a claim.
func (c *Client) CreateClaim(ctx context.Context, req ClaimRequest) (*CreatedClaim, error) {
	return fetch[CreatedClaim](ctx, c, call{method: http.MethodPost, path: "/v1/claims", body: req})
}
