package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// Option configures a Client in New.
type Option func(*settings) error

// settings collects what the options ask for before New builds the client.
type settings struct {
	token     string
	roots     *x509.CertPool
	hc        *http.Client
	retry     retryPolicy
	userAgent string
	logger    *slog.Logger
}

// WithToken authenticates every request with the API token secret
// ("mst_...") as a bearer token.
func WithToken(secret string) Option {
	return func(s *settings) error {
		s.token = secret
		return nil
	}
}

// WithRootCAs trusts pool instead of the system roots when verifying the
// server's certificate. Muster's server CA is private, so most deployments
// need this or WithCAFile.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(s *settings) error {
		if pool == nil {
			return errors.New("WithRootCAs: nil certificate pool")
		}
		s.roots = pool
		return nil
	}
}

// WithCAFile trusts the PEM certificates in file (for example the server's
// <data-dir>/ca.pem) instead of the system roots.
func WithCAFile(file string) Option {
	return func(s *settings) error {
		pemBytes, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("CA file %s holds no PEM certificate", file)
		}
		s.roots = pool
		return nil
	}
}

// WithHTTPClient sends requests through hc, for custom transports, proxies
// or client certificates. It cannot be combined with WithRootCAs or
// WithCAFile: configure trust on hc's transport instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		s.hc = hc
		return nil
	}
}

// WithRetry sets how often a request the server refused for load (429, 503)
// or, for idempotent requests, a failed connection is tried in all
// (maxAttempts, 1 disables retries) and the first backoff; later backoffs
// double, with jitter, up to 30 seconds.
func WithRetry(maxAttempts int, baseBackoff time.Duration) Option {
	return func(s *settings) error {
		if maxAttempts < 1 {
			return fmt.Errorf("WithRetry: maxAttempts must be at least 1, got %d", maxAttempts)
		}
		if baseBackoff < 0 {
			return fmt.Errorf("WithRetry: negative backoff %s", baseBackoff)
		}
		s.retry.attempts = maxAttempts
		s.retry.base = baseBackoff
		return nil
	}
}

// WithUserAgent replaces the User-Agent header, so server logs can tell
// which tool made a request.
func WithUserAgent(ua string) Option {
	return func(s *settings) error {
		s.userAgent = ua
		return nil
	}
}

// WithLogger logs retries to logger. Without it the client logs nothing.
func WithLogger(logger *slog.Logger) Option {
	return func(s *settings) error {
		s.logger = logger
		return nil
	}
}

// httpClient returns the client's HTTP client: the caller's, or a new one
// whose transport trusts the configured roots.
func (s *settings) httpClient() (*http.Client, error) {
	if s.hc != nil {
		if s.roots != nil {
			return nil, errors.New("WithHTTPClient cannot be combined with WithRootCAs or WithCAFile: set RootCAs on your client's transport")
		}
		return s.hc, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
	// A server that accepted the connection but never answers should not
	// hang a CLI forever; contexts bound everything else.
	tr.ResponseHeaderTimeout = 2 * time.Minute
	return &http.Client{Transport: tr}, nil
}
