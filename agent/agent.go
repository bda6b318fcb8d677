package agent

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
)

// Protocols an Agent speaks.
const (
	ProtocolJSON = "json"
	ProtocolEST  = "est"
)

// ErrRefused means Muster refused the device. Muster never says why (the
// reason is in the device's history); retrying does not help.
var ErrRefused = errors.New("agent: provisioning refused by the server")

// Config configures an Agent.
type Config struct {
	// Server is the device listener's base URL, e.g. https://muster.example:9443.
	Server string
	// Roots verify the server's certificate (Muster's root CA, ca.pem).
	Roots *x509.CertPool
	// Birth is the device's birth certificate (with its chain) and key.
	Birth tls.Certificate
	// Claim is an installer's claim secret, for a device without a birth
	// certificate; it is sent to ClaimServer (JSON only).
	Claim       string
	ClaimServer string
	// Dir keeps the credentials; empty keeps them in memory only.
	Dir string
	// Template and Parameters go with provisioning requests.
	Template   string
	Parameters map[string]any
	// KeyAlgorithm of the operational key: ecdsa-p256 (default),
	// ecdsa-p384 or rsa-3072.
	KeyAlgorithm string
	// Protocol is ProtocolJSON (default) or ProtocolEST.
	Protocol string
	// RenewBefore is how long before expiry Run renews; default a third
	// of the certificate's lifetime.
	RenewBefore time.Duration
	// MaxWait bounds how long one call waits for approval or a rate
	// limit; default ten minutes. ctx bounds it too.
	MaxWait time.Duration
	// Regions makes Provision fetch the bootstrap document, time every
	// region's probe ProbeSamples times (DefaultProbeSamples when zero)
	// and send the measurements, and makes the agent follow the home
	// region Muster names (agent/regions.go, docs/regions.md).
	Regions      bool
	ProbeSamples int
	// Transport overrides the HTTP transport (tests, proxies).
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Agent provisions and renews one device. Provision, Renew and Run are
// for one goroutine at a time; Credentials may be read from any, as an MQTT
// session renews on its own goroutine when Muster says rotate.
type Agent struct {
	cfg Config
	alg pki.KeyAlgorithm
	log *slog.Logger

	mu    sync.Mutex
	creds *Credentials
	// measurements go with the next provisioning request (Regions).
	measurements map[string]region.Measurement
}

// New returns an agent for cfg.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" && cfg.ClaimServer == "" {
		return nil, errors.New("agent: a server URL is required")
	}
	alg, err := pki.ParseKeyAlgorithm(cfg.KeyAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = ProtocolJSON
	case ProtocolJSON, ProtocolEST:
	default:
		return nil, fmt.Errorf("agent: unknown protocol %q: use json or est", cfg.Protocol)
	}
	if cfg.Claim != "" && cfg.Protocol != ProtocolJSON {
		return nil, errors.New("agent: claims work over the JSON API only")
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, alg: alg, log: cfg.Logger}, nil
}

// Credentials are a provisioned device's operational identity.
type Credentials struct {
	DeviceID    string
	Certificate *x509.Certificate
	// Chain is the issuing CA and the CAs above it.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// Info is the rest of the provisioning answer (endpoints,
	// configuration); empty after EST.
	Info Response
}

// TLSCertificate is the credentials as a TLS client certificate, chain
// included.
func (c *Credentials) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.Certificate.Raw}, PrivateKey: c.Key, Leaf: c.Certificate}
	for _, ca := range c.Chain {
		tc.Certificate = append(tc.Certificate, ca.Raw)
	}
	return tc
}

// Response is Muster's JSON provisioning answer.
type Response struct {
	DeviceID        string         `json:"deviceId"`
	Certificate     string         `json:"certificate"`
	CAChain         string         `json:"caChain"`
	NotAfter        time.Time      `json:"notAfter"`
	Region          string         `json:"region,omitempty"`
	Endpoints       map[string]any `json:"endpoints,omitempty"`
	Configuration   map[string]any `json:"configuration,omitempty"`
	Template        string         `json:"template,omitempty"`
	TemplateVersion int64          `json:"templateVersion,omitempty"`
	// ServedBy is the region of the node that answered; Redirect, when
	// set, names the device's home region (which Region and Endpoints
	// already are) because it is another one.
	ServedBy string    `json:"servedBy,omitempty"`
	Redirect *Redirect `json:"redirect,omitempty"`
	// HomeSince is when a rehome command or report last changed Region
	// (kept by the agent, not sent by Muster).
	HomeSince time.Time `json:"homeSince,omitzero"`
}

// Redirect says a device's home region is not the one it provisioned
// through.
type Redirect struct {
	Region    string         `json:"region"`
	Endpoints map[string]any `json:"endpoints"`
	Reason    string         `json:"reason"`
}

// Credentials returns what the agent holds now: loaded, provisioned or
// renewed; nil before any of that.
func (a *Agent) Credentials() *Credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.creds
}

// setCredentials makes c the credentials the agent holds.
func (a *Agent) setCredentials(c *Credentials) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creds = c
}
