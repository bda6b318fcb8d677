package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Claim lifetimes: short, because a claim stands in for a birth identity.
const (
	defaultClaimLifetime = 5 * time.Minute
	maxClaimLifetime     = 24 * time.Hour
)

// claimRequest is the body of POST /v1/claims.
type claimRequest struct {
	Factory  string `json:"factory"`
	Model    string `json:"model"`
	Serial   string `json:"serial"`
	Template string `json:"template,omitempty"`
	// ExpiresIn is a Go duration, default 5m, at most 24h.
	ExpiresIn string `json:"expiresIn,omitempty"`
}

// claimCreated is the answer of POST /v1/claims: the only time the secret
// is shown.
type claimCreated struct {
	Claim  store.Claim `json:"claim"`
	Secret string      `json:"secret"`
}

func (s *Server) createClaim(r *http.Request, in *claimRequest) (claimCreated, error) {
	for _, f := range []struct{ name, v string }{{"factory", in.Factory}, {"model", in.Model}, {"serial", in.Serial}} {
		if err := fleet.ValidName(f.name, f.v); err != nil {
			return claimCreated{}, err
		}
	}
	if in.Template != "" {
		if err := fleet.ValidName("template", in.Template); err != nil {
			return claimCreated{}, err
		}
	}
	life := defaultClaimLifetime
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d < time.Minute || d > maxClaimLifetime {
			return claimCreated{}, validationError("expiresIn", "must be a duration from 1m to %v such as \"5m\", got %q", maxClaimLifetime, in.ExpiresIn)
		}
		life = d
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand never fails on supported platforms
	secret := "mcl_" + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	c := &store.Claim{Hash: hex.EncodeToString(sum[:]), Factory: in.Factory, Model: in.Model, Serial: in.Serial,
		Template: in.Template, ExpiresAt: s.now().Add(life)}
	if err := s.store.CreateClaim(r.Context(), c, principal(r).Actor()); err != nil {
		return claimCreated{}, err
	}
	return claimCreated{Claim: *c, Secret: secret}, nil
}
