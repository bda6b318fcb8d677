package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newTestClient starts a TLS server with handler and returns a client that
// trusts it, retrying quickly so tests stay fast.
func newTestClient(t *testing.T, handler http.HandlerFunc, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	opts = append([]Option{WithToken("mst_test"), WithHTTPClient(srv.Client()), WithRetry(4, time.Millisecond)}, opts...)
	c, err := New(srv.URL, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

func TestRetryOn429And503ThenSuccess(t *testing.T) {
	var attempts atomic.Int32
	var bodies []string
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		switch attempts.Add(1) {
		case 1:
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "slow down")
		case 2:
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "busy")
		default:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(Device{ID: "dev_1"})
		}
	})
	// A POST: retried because 429 and 503 say the server did not process it.
	d, err := c.AddMaintenance(context.Background(), "dev_1", MaintenanceItem{Problem: "fan noise"})
	if err != nil {
		t.Fatalf("AddMaintenance: %v", err)
	}
	if d.ID != "dev_1" || attempts.Load() != 3 {
		t.Fatalf("got device %q after %d attempts, want dev_1 after 3", d.ID, attempts.Load())
	}
	for i, b := range bodies {
		if b != bodies[0] || !strings.Contains(b, `"problem":"fan noise"`) {
			t.Fatalf("attempt %d sent body %q, want the same body as attempt 1 (%q)", i+1, b, bodies[0])
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "slow down")
			return
		}
		_ = json.NewEncoder(w).Encode(Principal{ID: "tok_1", Role: RoleAdmin})
	})
	start := time.Now()
	if _, err := c.Whoami(context.Background()); err != nil {
		t.Fatalf("Whoami: %v", err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Fatalf("retried after %v, want at least the 1s the server asked for", elapsed)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "maintenance")
	}, WithRetry(2, time.Millisecond))
	c.retry.max = 20 * time.Millisecond
	start := time.Now()
	_, err := c.Whoami(context.Background())
	if !HasCode(err, CodeUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("waited %v; Retry-After must be capped", elapsed)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "busy")
	}, WithRetry(3, time.Millisecond))
	_, err := c.GetDevice(context.Background(), "dev_1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want an APIError with status 503", err)
	}
	if !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %q, want it to say it gave up after 3 attempts", err)
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("server saw %d attempts, want 3", n)
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		writeError(w, http.StatusNotFound, CodeNotFound, "no such device")
	})
	_, err := c.GetDevice(context.Background(), "dev_x")
	if !HasCode(err, CodeNotFound) {
		t.Fatalf("err = %v, want not_found", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("server saw %d attempts, want 1", n)
	}
}

func TestContextCancelStopsBackoff(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "slow down")
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.ListTokens(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !HasCode(err, CodeRateLimited) {
		t.Fatalf("err = %v, want it to keep the last API error too", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("returned after %v, want right after the cancel", elapsed)
	}
}

// TestTransportErrorsRetryOnlyIdempotent checks that a dropped connection is
// retried for a GET but not for a POST, which the server may have processed.
func TestTransportErrorsRetryOnlyIdempotent(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_ = json.NewEncoder(w).Encode(Device{ID: "dev_1"})
	})
	if _, err := c.GetDevice(context.Background(), "dev_1"); err != nil {
		t.Fatalf("GET after a dropped connection: %v", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("GET: server saw %d attempts, want 2", n)
	}

	attempts.Store(0)
	if _, err := c.SetState(context.Background(), "dev_1", StateActive, ""); err == nil {
		t.Fatal("POST after a dropped connection succeeded, want the transport error")
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("POST: server saw %d attempts, want 1 (not retried)", n)
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/devices/dev_1/state":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"code":"invalid_transition","message":"cannot move a disposed device to active: disposed is final","allowed":[]}`)
		case "/v1/devices/dev_2/state":
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"code":"invalid_transition","message":"cannot move","allowed":["pending","provisioned"]}`)
		case "/v1/devices":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"code":"validation_failed","message":"identity.serial: is required","field":"identity.serial"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	})
	ctx := context.Background()

	_, err := c.SetState(ctx, "dev_2", StateActive, "")
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %T %v, want *APIError", err, err)
	}
	if apiErr.Status != 409 || apiErr.Code != CodeInvalidTransition || strings.Join(apiErr.Allowed, ",") != "pending,provisioned" {
		t.Fatalf("got %+v", apiErr)
	}
	if !strings.Contains(err.Error(), "allowed next states: pending, provisioned") {
		t.Fatalf("Error() = %q, want the allowed states", err)
	}

	_, err = c.SetState(ctx, "dev_1", StateActive, "")
	if !strings.Contains(err.Error(), "no further state change is allowed") {
		t.Fatalf("Error() = %q, want it to say the state is final", err)
	}

	_, err = c.CreateDevice(ctx, DeviceInput{})
	if !errors.As(err, &apiErr) || apiErr.Field != "identity.serial" || apiErr.Code != CodeValidationFailed {
		t.Fatalf("got %v, want validation_failed on identity.serial", err)
	}
	if want := "muster API: identity.serial: is required (HTTP 400, code validation_failed, field identity.serial)"; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err, want)
	}

	_, err = c.Whoami(ctx)
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "" || apiErr.Message != "Bad Gateway" {
		t.Fatalf("non-JSON error decoded as %+v", apiErr)
	}
}

func TestRequestShape(t *testing.T) {
	var got *http.Request
	var body []byte
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		body, _ = io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(Device{ID: "dev/1"})
	}, WithUserAgent("muster-test/1"))
	owner := "acme"
	_, err := c.UpdateDevice(context.Background(), "dev/1", DevicePatch{
		Inventory:  &Inventory{Owner: owner},
		Attributes: map[string]*string{"color": &owner, "gone": nil},
	}, 7)
	if err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	checks := map[string]string{
		"method":        got.Method,
		"path":          got.URL.EscapedPath(),
		"authorization": got.Header.Get("Authorization"),
		"if-match":      got.Header.Get("If-Match"),
		"content-type":  got.Header.Get("Content-Type"),
		"user-agent":    got.Header.Get("User-Agent"),
	}
	want := map[string]string{
		"method":        "PATCH",
		"path":          "/v1/devices/dev%2F1",
		"authorization": "Bearer mst_test",
		"if-match":      "7",
		"content-type":  "application/json",
		"user-agent":    "muster-test/1",
	}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %q, want %q", k, checks[k], w)
		}
	}
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if _, ok := sent["identity"]; ok {
		t.Errorf("patch sent identity although it was not set: %s", body)
	}
	if string(sent["attributes"]) != `{"color":"acme","gone":null}` {
		t.Errorf("attributes = %s, want a null for the deleted key", sent["attributes"])
	}

	// Without a version there is no If-Match: the update is unconditional.
	if _, err := c.UpdateDevice(context.Background(), "dev_1", DevicePatch{}, 0); err != nil {
		t.Fatal(err)
	}
	if v := got.Header.Get("If-Match"); v != "" {
		t.Errorf("If-Match = %q without a version", v)
	}
}

func TestDeviceInputOmitsEmptySections(t *testing.T) {
	b, err := json.Marshal(DeviceInput{Identity: Identity{Serial: "S1", Model: "M", Factory: "F"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"identity":{"serial":"S1","model":"M","factory":"F"}}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

func TestTokenRequestJSON(t *testing.T) {
	b, err := json.Marshal(TokenRequest{Role: RoleManufacturer, Factory: "F1", ExpiresIn: 720 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	_ = json.Unmarshal(b, &got)
	d, err := time.ParseDuration(got["expiresIn"])
	if err != nil || d != 720*time.Hour || got["role"] != "manufacturer" || got["factory"] != "F1" {
		t.Fatalf("got %s", b)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		opts    []Option
		wantErr string
	}{
		{"https", "https://muster.example:8443/", nil, ""},
		{"http loopback with token", "http://127.0.0.1:8080", []Option{WithToken("x")}, ""},
		{"http remote with token", "http://muster.example", []Option{WithToken("x")}, "plain http"},
		{"no scheme", "muster.example:8443", nil, "want https://"},
		{"query", "https://muster.example/?a=b", nil, "query"},
		{"bad retry", "https://m.example", []Option{WithRetry(0, 0)}, "at least 1"},
		{"missing CA file", "https://m.example", []Option{WithCAFile(filepath.Join(dir, "none.pem"))}, "reading CA file"},
		{"CA file without PEM", "https://m.example", []Option{WithCAFile(notPEM)}, "no PEM certificate"},
		{"http client and CA", "https://m.example", []Option{WithHTTPClient(http.DefaultClient), WithRootCAs(x509Pool(t))}, "cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.url, tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if strings.HasSuffix(c.BaseURL(), "/") {
					t.Fatalf("BaseURL %q keeps a trailing slash", c.BaseURL())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestCAFileTrustsServer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	// The untrusting client's failed handshake is expected; keep it out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeCertPEM(t, caFile, srv.Certificate().Raw)

	c, err := New(srv.URL, WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("Health with the server's CA: %v", err)
	}
	untrusting, err := New(srv.URL, WithRetry(3, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := untrusting.Health(context.Background()); err == nil {
		t.Fatal("Health without the server's CA succeeded")
	}
}
