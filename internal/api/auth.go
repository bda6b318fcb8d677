package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/store"
)

// TokenPrefix starts every API token secret, so secrets are recognisable in
// logs and by secret scanners.
const TokenPrefix = "mst_"

// secretBytes is the entropy of a token secret.
const secretBytes = 32

// NewTokenSecret returns a new API token secret and the hash to store for
// it. Only the hash is ever stored; the secret is shown to its owner once.
func NewTokenSecret() (secret, hash string) {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// HashToken returns the stored form of a token secret: hex SHA-256. A fast
// hash is enough because secrets are 256 random bits, not passwords.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Principal is who is calling: the token's identity and what it may do.
type Principal struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Factory scopes a manufacturer to its own factory's devices.
	Factory string `json:"factory,omitempty"`
}

// Actor is how the principal is named in device histories and the audit
// log: "<role>/<name>".
func (p Principal) Actor() string { return string(p.Role) + "/" + p.Name }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal an authenticated request carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// principal returns the caller of an authenticated route. Routes reach
// handlers only through authenticate, so a missing principal is a bug; it
// answers as an unknown caller rather than as someone with rights.
func principal(r *http.Request) Principal {
	p, _ := PrincipalFrom(r.Context())
	return p
}

// authenticate resolves the bearer token into a Principal, or answers 401.
// The messages say what is wrong with the token so its owner can fix it;
// they reveal nothing a token holder does not already know.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principalOf(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func (s *Server) principalOf(r *http.Request) (Principal, error) {
	unauthorized := func(format string, args ...any) error {
		return errorf(http.StatusUnauthorized, codeUnauthorized, "", format, args...)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, unauthorized("send Authorization: Bearer <token>")
	}
	scheme, secret, _ := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Principal{}, unauthorized("the Authorization header must be Bearer <token>")
	}
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Principal{}, unauthorized("not a Muster token (they start with %s)", TokenPrefix)
	}
	t, err := s.store.TokenByHash(r.Context(), HashToken(secret))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Principal{}, unauthorized("unknown token")
	case err != nil:
		return Principal{}, fmt.Errorf("looking up token: %w", err)
	case t.RevokedAt != nil:
		return Principal{}, unauthorized("token %s was revoked; ask an admin for a new one", t.ID)
	case t.ExpiresAt != nil && !s.now().Before(*t.ExpiresAt):
		return Principal{}, unauthorized("token %s expired at %s; ask an admin for a new one", t.ID, t.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	case !Role(t.Role).Valid():
		return Principal{}, unauthorized("token %s has unknown role %q", t.ID, t.Role)
	}
	return Principal{ID: t.ID, Name: t.Name, Role: Role(t.Role), Factory: t.Factory}, nil
}

// whoami answers with the caller's principal.
func (s *Server) whoami(r *http.Request) (Principal, error) {
	return principal(r), nil
}
