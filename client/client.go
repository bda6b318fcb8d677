// Package client is the Go SDK for Muster's admin API. It covers every route
// of the v1 contract (docs/api-contract.md) with one method each, decodes
// failures into *APIError, and retries requests the server refused for load
// (429, 503) with capped exponential backoff.
//
// The device record types are aliases of the registry's own types, so a
// client and the server can never disagree about the shape of a device.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds a successful response body the client will read.
// A device history of many thousands of events stays far below it; an
// endless body from a broken proxy does not exhaust memory.
const maxResponseBytes = 256 << 20

// Client talks to one Muster server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	userAgent string
	hc        *http.Client
	retry     retryPolicy
	log       *slog.Logger
}

// New returns a client for the server at baseURL, for example
// "https://muster.example:8443". It refuses to send a token over plain http
// to anything but a loopback address, because the token would travel in the
// clear.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://host[:port]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""

	s := settings{
		retry:     defaultRetryPolicy(),
		userAgent: "muster-go-client/1",
	}
	for _, opt := range opts {
		if err := opt(&s); err != nil {
			return nil, err
		}
	}
	if s.token != "" && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("server URL %q: refusing to send an API token over plain http; use https://", baseURL)
	}
	hc, err := s.httpClient()
	if err != nil {
		return nil, err
	}
	logger := s.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		base:      u,
		token:     s.token,
		userAgent: s.userAgent,
		hc:        hc,
		retry:     s.retry,
		log:       logger,
	}, nil
}

// BaseURL returns the server URL the client sends requests to.
func (c *Client) BaseURL() string { return c.base.String() }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call describes one API request. The body is encoded to bytes once, before
// the first attempt, so every retry sends exactly the same request.
type call struct {
	method string
	path   string // already escaped, relative to the base URL, e.g. "/v1/devices"
	query  url.Values
	body   any
	header http.Header
	accept string // defaults to application/json
	// stream, when set, is sent as the body instead of body, as
	// contentType; a stream cannot be sent twice, so it is never retried.
	stream      io.Reader
	contentType string
}

// fetch makes the call and decodes its answer into a new T. Like every SDK
// method it returns a value or an error, never both.
func fetch[T any](ctx context.Context, c *Client, cl call) (*T, error) {
	var out T
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// do sends cl with retries and decodes a successful answer into out: JSON for
// most types, the raw bytes when out is *[]byte, nothing when out is nil.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("encoding %s %s request: %w", cl.method, cl.path, err)
		}
	}
	resp, err := c.send(ctx, cl, body)
	if err != nil {
		return err
	}
	defer func() {
		// Drain what is left so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	limited := io.LimitReader(resp.Body, maxResponseBytes)
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		b, err := io.ReadAll(limited)
		if err != nil {
			return fmt.Errorf("reading %s %s response: %w", cl.method, cl.path, err)
		}
		*out = b
		return nil
	default:
		if err := json.NewDecoder(limited).Decode(out); err != nil {
			return fmt.Errorf("decoding %s %s response: %w", cl.method, cl.path, err)
		}
		return nil
	}
}

// send performs the request, retrying as the policy allows, and returns a
// 2xx response whose body the caller must close. Any other answer becomes an
// error: *APIError for an HTTP failure, the transport error otherwise.
func (c *Client) send(ctx context.Context, cl call, body []byte) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := c.newRequest(ctx, cl, body)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		var (
			failure error
			wait    time.Duration
			retry   bool
		)
		switch {
		case err != nil:
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("%s %s: %w", cl.method, cl.path, ctxErr)
			}
			failure = err
			// A transport failure may hide a request the server did
			// process, so only requests that are safe to repeat retry.
			retry = idempotent(cl.method) && transient(err)
			wait = c.retry.backoff(attempt)
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		default:
			apiErr := readAPIError(resp)
			failure = apiErr
			// 429 and 503 mean the server did not process the request,
			// so even a POST is safe to send again.
			retry = apiErr.Status == http.StatusTooManyRequests || apiErr.Status == http.StatusServiceUnavailable
			wait = c.retry.backoff(attempt)
			if d, ok := retryAfter(resp.Header, time.Now()); ok {
				wait = min(d, c.retry.max)
			}
		}
		if !retry || cl.stream != nil {
			return nil, failure
		}
		if attempt >= c.retry.attempts {
			if attempt == 1 {
				return nil, failure
			}
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, failure)
		}
		c.log.InfoContext(ctx, "retrying muster API request",
			"method", cl.method, "path", cl.path, "attempt", attempt, "wait", wait, "error", failure)
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w (while waiting to retry after: %w)", cl.method, cl.path, err, failure)
		}
	}
}

func (c *Client) newRequest(ctx context.Context, cl call, body []byte) (*http.Request, error) {
	u := *c.base
	// cl.path is escaped already (ids go through url.PathEscape), so it is
	// set as RawPath; Path gets its decoded form to keep the URL consistent.
	u.RawPath = c.base.EscapedPath() + cl.path
	path, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", cl.method, cl.path, err)
	}
	u.Path = path
	if len(cl.query) > 0 {
		u.RawQuery = cl.query.Encode()
	}
	var rd io.Reader
	switch {
	case body != nil:
		rd = bytes.NewReader(body)
	case cl.stream != nil:
		rd = cl.stream
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s request: %w", cl.method, cl.path, err)
	}
	if body != nil {
		// GetBody lets net/http itself replay the body on redirects.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.stream != nil {
		req.Header.Set("Content-Type", cl.contentType)
	}
	for k, vs := range cl.header {
		req.Header[k] = vs
	}
	accept := cl.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// idempotent reports whether sending the same request twice has the effect
// of sending it once (RFC 9110, section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// transient reports whether a transport error may go away by itself:
// refused or reset connections and truncated answers, but not certificate
// or protocol errors, which would fail the same way again.
func transient(err error) bool {
	var (
		certErr  *tls.CertificateVerificationError
		alertErr tls.AlertError
		dnsErr   *net.DNSError
		opErr    *net.OpError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &alertErr):
		return false
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return false
	}
	if errors.As(err, &opErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
