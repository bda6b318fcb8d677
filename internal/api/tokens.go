package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// minTokenLifetime stops tokens that expire before anyone can use them.
const minTokenLifetime = time.Minute

// tokenRequest is the body of POST /v1/tokens.
type tokenRequest struct {
	Name    string `json:"name"`
	Role    Role   `json:"role"`
	Factory string `json:"factory,omitempty"`
	// ExpiresIn is a Go duration such as "720h"; empty means the token
	// never expires (factory-line automation), until revoked.
	ExpiresIn string `json:"expiresIn,omitempty"`
}

// tokenCreated is the answer of POST /v1/tokens: the only time the secret
// is shown.
type tokenCreated struct {
	Token  store.Token `json:"token"`
	Secret string      `json:"secret"`
}

func (s *Server) createToken(r *http.Request, in *tokenRequest) (tokenCreated, error) {
	if err := fleet.ValidName("name", in.Name); err != nil {
		return tokenCreated{}, err
	}
	if !in.Role.Valid() {
		return tokenCreated{}, validationError("role", "%q is not one of %v", in.Role, Roles())
	}
	switch {
	case in.Role == RoleManufacturer:
		if err := fleet.ValidName("factory", in.Factory); err != nil {
			return tokenCreated{}, err
		}
		// A manufacturer is scoped by its factory's models and serials, so
		// the factory must be registered first.
		if _, err := s.store.GetFactory(r.Context(), in.Factory); errors.Is(err, store.ErrNotFound) {
			return tokenCreated{}, validationError("factory", "factory %q is not registered; register it first with muster factories add", in.Factory)
		} else if err != nil {
			return tokenCreated{}, err
		}
	case in.Factory != "":
		return tokenCreated{}, validationError("factory", "only manufacturer tokens are scoped to a factory")
	}
	var expires *time.Time
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d < minTokenLifetime {
			return tokenCreated{}, validationError("expiresIn", "must be a duration of at least %v such as \"720h\", got %q", minTokenLifetime, in.ExpiresIn)
		}
		at := s.now().Add(d).UTC()
		expires = &at
	}
	secret, hash := NewTokenSecret()
	t := &store.Token{Name: in.Name, Role: string(in.Role), Factory: in.Factory, Hash: hash, ExpiresAt: expires}
	if err := s.store.CreateToken(r.Context(), t, principal(r).Actor()); err != nil {
		return tokenCreated{}, err
	}
	return tokenCreated{Token: *t, Secret: secret}, nil
}

func (s *Server) listTokens(r *http.Request) (list[store.Token], error) {
	ts, err := s.store.ListTokens(r.Context())
	return listOf(ts), err
}

func (s *Server) revokeToken(r *http.Request) error {
	id := r.PathValue("id")
	err := s.store.RevokeToken(r.Context(), id, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("token", id)
	}
	return err
}
