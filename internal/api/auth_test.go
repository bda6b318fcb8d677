package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

func TestNewTokenSecret(t *testing.T) {
	s1, h1 := NewTokenSecret()
	s2, _ := NewTokenSecret()
	if s1 == s2 {
		t.Fatal("two secrets are equal")
	}
	raw, ok := strings.CutPrefix(s1, TokenPrefix)
	if !ok {
		t.Fatalf("secret %q lacks %s", s1, TokenPrefix)
	}
	if b, err := base64.RawURLEncoding.DecodeString(raw); err != nil || len(b) != 32 {
		t.Errorf("secret body is not base64url of 32 bytes: %v, %d bytes", err, len(b))
	}
	if h1 != HashToken(s1) || len(h1) != 64 || strings.ToLower(h1) != h1 {
		t.Errorf("hash %q is not the hex SHA-256 of the secret", h1)
	}
	// The well-known SHA-256 of "abc".
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("empty context has a principal")
	}
	p := Principal{ID: "tok_1", Name: "line-3", Role: RoleManufacturer, Factory: "f1"}
	got, ok := PrincipalFrom(WithPrincipal(context.Background(), p))
	if !ok || got != p || got.Actor() != "manufacturer/line-3" {
		t.Errorf("round trip = %+v %v, actor %q", got, ok, got.Actor())
	}
}

// TestTokenLifecycle creates a token through the API, uses it, lists it,
// revokes it and checks the audit log recorded both with their actor.
func TestTokenLifecycle(t *testing.T) {
	h := newHarness(t)
	h.registerFactory("f9")
	created := call[tokenCreated](h, request{caller: "admin", method: "POST", path: "/v1/tokens",
		body: `{"name":"line-9","role":"manufacturer","factory":"f9","expiresIn":"720h"}`}, http.StatusCreated)
	if !strings.HasPrefix(created.Secret, TokenPrefix) || created.Token.ID == "" || created.Token.ExpiresAt == nil ||
		created.Token.CreatedBy != "admin/admin-token" {
		t.Fatalf("created = %+v", created)
	}
	if w := h.do(request{caller: "admin", method: "GET", path: "/v1/tokens"}); strings.Contains(w.Body.String(), HashToken(created.Secret)) {
		t.Error("token listing exposes a hash")
	}
	h.tokens["line-9"] = created.Secret
	me := call[Principal](h, request{caller: "line-9", method: "GET", path: "/v1/whoami"}, http.StatusOK)
	if me != (Principal{ID: created.Token.ID, Name: "line-9", Role: RoleManufacturer, Factory: "f9"}) {
		t.Errorf("whoami = %+v", me)
	}
	d := call[*fleet.Device](h, request{caller: "line-9", method: "POST", path: "/v1/devices", body: h.input("")}, http.StatusCreated)
	if d.Identity.Factory != "f9" {
		t.Errorf("device factory = %s", d.Identity.Factory)
	}

	if w := h.do(request{caller: "admin", method: "DELETE", path: "/v1/tokens/" + created.Token.ID}); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if w := h.do(request{caller: "line-9", method: "GET", path: "/v1/whoami"}); w.Code != http.StatusUnauthorized {
		t.Errorf("revoked token answered %d", w.Code)
	}
	tokens := call[list[store.Token]](h, request{caller: "admin", method: "GET", path: "/v1/tokens"}, http.StatusOK)
	found := false
	for _, tok := range tokens.Items {
		if tok.ID == created.Token.ID {
			found = tok.RevokedAt != nil
		}
	}
	if !found {
		t.Error("listing does not show the token as revoked")
	}

	log := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: "/v1/audit-log"}, http.StatusOK)
	n := len(log.Items)
	if n < 2 || log.Items[n-2].Type != fleet.EventTokenCreated || log.Items[n-1].Type != fleet.EventTokenRevoked ||
		log.Items[n-1].Actor != "admin/admin-token" || strings.Contains(string(log.Items[n-2].Data), created.Secret) {
		t.Errorf("audit log tail = %+v", log.Items[max(0, n-2):])
	}
}

// TestTokenExpiry checks expiry against the server's clock.
func TestTokenExpiry(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	h.srv = New(Config{Store: h.st, Now: func() time.Time { return now }})
	created := call[tokenCreated](h, request{caller: "admin", method: "POST", path: "/v1/tokens", body: `{"name":"short","role":"auditor","expiresIn":"1h"}`}, http.StatusCreated)
	h.tokens["short"] = created.Secret
	call[Principal](h, request{caller: "short", method: "GET", path: "/v1/whoami"}, http.StatusOK)
	now = now.Add(time.Hour)
	w := h.do(request{caller: "short", method: "GET", path: "/v1/whoami"})
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "expired") {
		t.Errorf("expired token: %d %s", w.Code, w.Body)
	}
}

// TestPublicRoutes checks the routes that need no token.
func TestPublicRoutes(t *testing.T) {
	h := newHarness(t)
	if got := call[healthStatus](h, request{method: "GET", path: "/v1/healthz"}, http.StatusOK); got.Status != "ok" {
		t.Errorf("healthz = %+v", got)
	}
	w := h.do(request{method: "GET", path: "/v1/healthz"})
	if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("missing safe headers: %v", w.Header())
	}
}

// TestPanicAnswers500 checks that a panicking handler answers in the
// contract's error shape and the server keeps serving.
func TestPanicAnswers500(t *testing.T) {
	h := newHarness(t)
	rt := route{name: "boom", method: "GET", pattern: "/boom", perm: PermPublic, status: http.StatusOK,
		endpoint: noBody(func(*Server, *http.Request) (healthStatus, error) { panic("boom") })}
	w := httptest.NewRecorder()
	h.srv.handler(rt).ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if e := errorOf(t, w); w.Code != http.StatusInternalServerError || e.Code != codeInternal || strings.Contains(e.Message, "boom") {
		t.Errorf("panic answered %d %+v", w.Code, e)
	}
}
