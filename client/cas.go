package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// CA statuses.
const (
	CAActive   = "active"   // signs, and is trusted
	CARetiring = "retiring" // trusted until RetireAt, no longer signs
	CARetired  = "retired"
)

// CA is a certificate authority Muster signs with or trusts. Its key is in
// the server's key store (files or an HSM), never in the API.
type CA struct {
	ID           string     `json:"id"`
	Purpose      string     `json:"purpose"` // root, operational, server, manufacturing or external
	Factory      string     `json:"factory,omitempty"`
	KeyLabel     string     `json:"keyLabel,omitempty"`
	CertPEM      string     `json:"certPem"`
	SubjectKeyID string     `json:"subjectKeyId"`
	Status       string     `json:"status"`
	NotAfter     time.Time  `json:"notAfter"`
	RetireAt     *time.Time `json:"retireAt,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
}

// CAFilter selects CAs in ListCAs; empty fields match anything.
type CAFilter struct {
	Purpose string
	Factory string
	Status  string
}

// Chain is one file of a CA export: the trusted CAs of one purpose (and
// factory), newest first, then the root, as PEM; FileName is the name
// `muster ca export` gives it.
type Chain struct {
	Purpose  string `json:"purpose"`
	Factory  string `json:"factory,omitempty"`
	PEM      string `json:"pem"`
	FileName string `json:"fileName"`
}

// RotateRequest replaces a CA: Purpose is operational, server or
// manufacturing (with Factory). The old CA stays trusted for Overlap (the
// server's default, 720h, when zero) and no longer signs.
type RotateRequest struct {
	// Purpose is operational, server, manufacturing or regional.
	Purpose string
	// Factory names the factory of a manufacturing CA.
	Factory string
	// Region names the region of a regional CA.
	Region  string
	Overlap time.Duration
}

// ListCAs returns the CAs that match f.
func (c *Client) ListCAs(ctx context.Context, f CAFilter) ([]CA, error) {
	q := url.Values{}
	for k, v := range map[string]string{"purpose": f.Purpose, "factory": f.Factory, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out items[CA]
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/cas", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// CAChains returns the chains a relying party needs to verify what Muster
// issued: root.pem first.
func (c *Client) CAChains(ctx context.Context) ([]Chain, error) {
	return list[Chain](ctx, c, "/v1/cas/chains")
}

// RotateCA replaces a CA and returns the new one.
func (c *Client) RotateCA(ctx context.Context, req RotateRequest) (*CA, error) {
	body := struct {
		Purpose string `json:"purpose"`
		Factory string `json:"factory,omitempty"`
		Region  string `json:"region,omitempty"`
		Overlap string `json:"overlap,omitempty"`
	}{Purpose: req.Purpose, Factory: req.Factory, Region: req.Region}
	if req.Overlap != 0 {
		body.Overlap = req.Overlap.String()
	}
	return fetch[CA](ctx, c, call{method: http.MethodPost, path: "/v1/cas/rotate", body: body})
}
