package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/est"
)

// request kinds.
const (
	kindProvision = "provision"
	kindRenew     = "renew"
)

// maxAnswer bounds a server answer.
const maxAnswer = 1 << 20

// client makes an HTTP client presenting cred (none for claims).
func (a *Agent) client(cred *tls.Certificate) *http.Client {
	if a.cfg.Transport != nil {
		return &http.Client{Transport: a.cfg.Transport, Timeout: time.Minute}
	}
	cfg := &tls.Config{RootCAs: a.cfg.Roots, MinVersion: tls.VersionTLS12}
	if cred != nil {
		cfg.Certificates = []tls.Certificate{*cred}
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// exchange sends the CSR until Muster answers with a certificate or a
// final no: it waits out approvals, rate limits and races as Retry-After
// says, and network errors with a growing pause, up to MaxWait.
func (a *Agent) exchange(ctx context.Context, kind string, cred *tls.Certificate, csr []byte) (*Credentials, error) {
	c := a.client(cred)
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(a.cfg.MaxWait)
	backoff := time.Second
	var lastErr error
	for {
		status, header, body, err := a.send(ctx, c, kind, csr)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			a.log.Warn("provisioning request failed; retrying", "err", err, "in", backoff)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		case status == http.StatusOK:
			return a.decode(ctx, c, body)
		case status == http.StatusAccepted, status == http.StatusTooManyRequests, status == http.StatusConflict, status == http.StatusServiceUnavailable:
			wait = retryAfter(header, 5*time.Second)
			a.log.Info("provisioning not finished; retrying the same request", "status", status, "in", wait)
		case status == http.StatusForbidden:
			return nil, ErrRefused
		default:
			return nil, fmt.Errorf("agent: server answered %d: %s", status, strings.TrimSpace(string(body)))
		}
		if time.Now().Add(wait).After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("agent: gave up after %v: %w; retry later with the same directory to resume", a.cfg.MaxWait, lastErr)
			}
			what := map[int]string{http.StatusAccepted: "the request still waits for approval", http.StatusTooManyRequests: "still rate-limited",
				http.StatusConflict: "another request of this device is in flight"}[status]
			return nil, fmt.Errorf("agent: gave up after %v: %s (HTTP %d); retry later with the same directory to resume the same request", a.cfg.MaxWait, what, status)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// send makes one request in the configured protocol.
func (a *Agent) send(ctx context.Context, c *http.Client, kind string, csr []byte) (int, http.Header, []byte, error) {
	var url, ctype string
	var body []byte
	if a.cfg.Protocol == ProtocolEST {
		op := "simpleenroll"
		if kind == kindRenew {
			op = "simplereenroll"
		}
		url, ctype = a.estURL(op), "application/pkcs10"
		body = []byte(base64.StdEncoding.EncodeToString(csr))
	} else {
		path := "/v1/provision"
		base := a.server()
		switch {
		case kind == kindRenew:
			path = "/v1/provision/renew"
		case a.cfg.Claim != "":
			path, base = "/v1/provision/claim", a.cfg.ClaimServer
			if base == "" {
				base = a.cfg.Server
			}
		}
		req := map[string]any{"csr": base64.StdEncoding.EncodeToString(csr)}
		if a.cfg.Template != "" {
			req["template"] = a.cfg.Template
		}
		if kind == kindProvision && len(a.cfg.Parameters) > 0 {
			req["parameters"] = a.cfg.Parameters
		}
		if kind == kindProvision && a.cfg.Claim != "" {
			req["claim"] = a.cfg.Claim
		}
		if kind == kindProvision && len(a.measurements) > 0 {
			req["measurements"] = a.measurements
		}
		var err error
		if body, err = json.Marshal(req); err != nil {
			return 0, nil, nil, err
		}
		url, ctype = strings.TrimSuffix(base, "/")+path, "application/json"
	}
	return do(ctx, c, http.MethodPost, url, ctype, body)
}

func (a *Agent) estURL(op string) string {
	u := strings.TrimSuffix(a.cfg.Server, "/") + est.PathPrefix
	if a.cfg.Template != "" {
		u += "/" + a.cfg.Template
	}
	return u + "/" + op
}

func do(ctx context.Context, c *http.Client, method, url, ctype string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, resp.Header, b, err
}

// decode reads a successful answer into credentials (without the key).
func (a *Agent) decode(ctx context.Context, c *http.Client, body []byte) (*Credentials, error) {
	if a.cfg.Protocol == ProtocolEST {
		certs, err := certsOnly(body)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("agent: EST answer: %v", err)
		}
		status, _, chainBody, err := do(ctx, c, http.MethodGet, a.estURL("cacerts"), "", nil)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("agent: EST cacerts: %d %v", status, err)
		}
		chain, err := certsOnly(chainBody)
		if err != nil {
			return nil, fmt.Errorf("agent: EST cacerts: %w", err)
		}
		return &Credentials{DeviceID: certs[0].Subject.CommonName, Certificate: certs[0], Chain: chain}, nil
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("agent: provisioning answer: %w", err)
	}
	certs, err := parsePEMCerts([]byte(resp.Certificate + resp.CAChain))
	if err != nil || len(certs) < 2 {
		return nil, fmt.Errorf("agent: provisioning answer has no certificate and chain: %v", err)
	}
	return &Credentials{DeviceID: resp.DeviceID, Certificate: certs[0], Chain: certs[1:], Info: resp}, nil
}

// certsOnly decodes a base64 certs-only PKCS #7 (RFC 8951: any line breaks).
func certsOnly(body []byte) ([]*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
	if err != nil {
		return nil, err
	}
	raw, ok := est.ParseCertsOnly(der)
	if !ok {
		return nil, errors.New("not a certs-only PKCS #7")
	}
	out := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		cert, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	return out, nil
}

func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
}

// retryAfter reads Retry-After in seconds, or def.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	if n, err := strconv.Atoi(h.Get("Retry-After")); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return def
}
