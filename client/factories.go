package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// CA modes of a factory.
const (
	// CAManaged: Muster runs the factory's manufacturing (birth) CA.
	CAManaged = "managed"
	// CAExternal: the maker's own IDevID CA is the factory's trust anchor.
	CAExternal = "external"
)

// Factory is a registered manufacturing site: the models it makes and the
// serial numbers it may give them. A manufacturer token registers devices
// for its factory only, and only those.
type Factory struct {
	Name          string    `json:"name"`
	Models        []string  `json:"models"`
	SerialPattern string    `json:"serialPattern"`
	CAMode        string    `json:"caMode"`
	CreatedAt     time.Time `json:"createdAt"`
	CreatedBy     string    `json:"createdBy"`
	// CAs anchor the factory's birth certificates: its active CA and,
	// during a rotation's overlap, the one it replaced.
	CAs []CA `json:"cas"`
}

// FactoryRequest registers a factory. Without CACert Muster creates the
// factory's manufacturing CA. With it, the maker's CA becomes the factory's
// trust anchor: VerificationCert must be a certificate signed with that
// CA's key whose common name is Nonce, from FactoryChallenge.
type FactoryRequest struct {
	Name          string   `json:"name"`
	Models        []string `json:"models"`
	SerialPattern string   `json:"serialPattern"`
	// PEM texts, for an external CA.
	CACert           string `json:"caCert,omitempty"`
	VerificationCert string `json:"verificationCert,omitempty"`
	Nonce            string `json:"nonce,omitempty"`
}

// Challenge is a proof-of-possession nonce for registering a maker's CA:
// good once, until ExpiresAt.
type Challenge struct {
	Nonce     string    `json:"nonce"`
	Factory   string    `json:"factory"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CreateFactory registers a factory with its CA.
func (c *Client) CreateFactory(ctx context.Context, req FactoryRequest) (*Factory, error) {
	return fetch[Factory](ctx, c, call{method: http.MethodPost, path: "/v1/factories", body: req})
}

// ListFactories returns every factory the token may see: all of them, or a
// manufacturer's own.
func (c *Client) ListFactories(ctx context.Context) ([]Factory, error) {
	return list[Factory](ctx, c, "/v1/factories")
}

// GetFactory returns one factory with its CAs.
func (c *Client) GetFactory(ctx context.Context, name string) (*Factory, error) {
	return fetch[Factory](ctx, c, call{method: http.MethodGet, path: factoryPath(name)})
}

// FactoryChallenge asks for a nonce to register the maker's CA of a new
// factory; expiresIn zero means the server's default (an hour).
func (c *Client) FactoryChallenge(ctx context.Context, name string, expiresIn time.Duration) (*Challenge, error) {
	body := struct {
		ExpiresIn string `json:"expiresIn,omitempty"`
	}{}
	if expiresIn != 0 {
		body.ExpiresIn = expiresIn.String()
	}
	return fetch[Challenge](ctx, c, call{method: http.MethodPost, path: factoryPath(name) + "/challenge", body: body})
}

func factoryPath(name string) string { return "/v1/factories/" + url.PathEscape(name) }
