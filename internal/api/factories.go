package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// factoryRequest is the body of POST /v1/factories. Without caCert the
// factory gets a Muster manufacturing CA; with it, the maker's own CA
// becomes its trust anchor once verificationCert (signed with that CA's
// key, common name = nonce) proves the maker holds the key.
type factoryRequest struct {
	Name             string   `json:"name"`
	Models           []string `json:"models"`
	SerialPattern    string   `json:"serialPattern"`
	CACert           string   `json:"caCert,omitempty"`
	VerificationCert string   `json:"verificationCert,omitempty"`
	Nonce            string   `json:"nonce,omitempty"`
}

// factoryView is a factory with the CAs that anchor its birth
// certificates (two during a rotation's overlap).
type factoryView struct {
	store.Factory
	CAs []store.CA `json:"cas"`
}

// challengeRequest is the body of POST /v1/factories/{name}/challenge.
type challengeRequest struct {
	// ExpiresIn is how long the nonce is good, a Go duration (default 1h).
	ExpiresIn string `json:"expiresIn,omitempty"`
}

func (s *Server) createFactory(r *http.Request, in *factoryRequest) (*factoryView, error) {
	cas, err := s.caRegistry()
	if err != nil {
		return nil, err
	}
	mode := mfg.CAManaged
	if in.CACert != "" || in.VerificationCert != "" || in.Nonce != "" {
		mode = mfg.CAExternal
		for _, f := range []struct{ name, v string }{{"caCert", in.CACert}, {"verificationCert", in.VerificationCert}, {"nonce", in.Nonce}} {
			if f.v == "" {
				return nil, validationError(f.name, "an external CA needs caCert, verificationCert and nonce (from POST /v1/factories/%s/challenge)", in.Name)
			}
		}
	}
	f, err := mfg.NewFactory(mfg.Factory{Name: in.Name, Models: in.Models, SerialPattern: in.SerialPattern, CAMode: mode})
	if err != nil {
		return nil, err
	}
	sf := store.Factory{Name: f.Name, Models: f.Models, SerialPattern: f.SerialPattern, CAMode: f.CAMode}
	a, err := cas.AddFactory(r.Context(), ca.FactoryRequest{Factory: sf, CACertPEM: []byte(in.CACert),
		VerificationCertPEM: []byte(in.VerificationCert), Nonce: in.Nonce}, principal(r).Actor())
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil, errorf(http.StatusConflict, codeDuplicate, "name", "factory %q is already registered", in.Name)
	case errors.Is(err, pki.ErrExternalCA):
		return nil, validationError("caCert", "%v", err)
	case errors.Is(err, pki.ErrPossession):
		return nil, validationError("verificationCert", "%v", err)
	case errors.Is(err, store.ErrChallenge):
		return nil, validationError("nonce", "%v", err)
	case err != nil:
		return nil, err
	}
	got, err := s.store.GetFactory(r.Context(), in.Name)
	if err != nil {
		return nil, err
	}
	return &factoryView{Factory: *got, CAs: []store.CA{a.CA}}, nil
}

func (s *Server) listFactories(r *http.Request) (list[factoryView], error) {
	fs, err := s.store.ListFactories(r.Context())
	if err != nil {
		return list[factoryView]{}, err
	}
	var out []factoryView
	for _, f := range fs {
		if !principal(r).canSeeFactory(f.Name) {
			continue
		}
		v, err := s.viewFactory(r.Context(), f)
		if err != nil {
			return list[factoryView]{}, err
		}
		out = append(out, *v)
	}
	return listOf(out), nil
}

func (s *Server) getFactory(r *http.Request) (*factoryView, error) {
	f, err := s.loadFactory(r)
	if err != nil {
		return nil, err
	}
	return s.viewFactory(r.Context(), *f)
}

// viewFactory adds the factory's trusted CAs, active first.
func (s *Server) viewFactory(ctx context.Context, f store.Factory) (*factoryView, error) {
	v := &factoryView{Factory: f, CAs: []store.CA{}}
	if s.cas == nil {
		return v, nil
	}
	for _, status := range []string{store.CAActive, store.CARetiring} {
		cas, err := s.cas.List(ctx, store.CAFilter{Factory: f.Name, Status: status})
		if err != nil {
			return nil, err
		}
		v.CAs = append(v.CAs, cas...)
	}
	return v, nil
}

// loadFactory reads the factory named by the {name} path value, answering
// 404 alike for an unknown factory and one a manufacturer may not see.
func (s *Server) loadFactory(r *http.Request) (*store.Factory, error) {
	name := r.PathValue("name")
	f, err := s.store.GetFactory(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !principal(r).canSeeFactory(name)) {
		return nil, notFound("factory", name)
	}
	return f, err
}

func (s *Server) factoryChallenge(r *http.Request, in *challengeRequest) (*store.Challenge, error) {
	cas, err := s.caRegistry()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if err := fleet.ValidName("name", name); err != nil {
		return nil, err
	}
	var ttl time.Duration
	if in.ExpiresIn != "" {
		if ttl, err = time.ParseDuration(in.ExpiresIn); err != nil || ttl < time.Minute || ttl > ca.MaxChallengeTTL {
			return nil, validationError("expiresIn", "must be a duration from 1m to %v such as \"1h\", got %q", ca.MaxChallengeTTL, in.ExpiresIn)
		}
	}
	switch _, err := s.store.GetFactory(r.Context(), name); {
	case err == nil:
		return nil, errorf(http.StatusConflict, codeDuplicate, "name", "factory %q is already registered; a challenge is for registering a new factory's CA", name)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return cas.Challenge(r.Context(), name, ttl, principal(r).Actor())
}

// factoryScope returns the factory a manufacturer works for, ready to check
// rows, or 403 when it is not registered: scoping needs its models and
// serial pattern.
func (s *Server) factoryScope(ctx context.Context, name string) (*mfg.Factory, error) {
	f, err := s.store.GetFactory(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusForbidden, codeForbidden, "identity.factory",
			"factory %q is not registered, so this token can register nothing; an admin registers it with muster factories add", name)
	}
	if err != nil {
		return nil, err
	}
	return mfg.NewFactory(mfg.Factory{Name: f.Name, Models: f.Models, SerialPattern: f.SerialPattern, CAMode: f.CAMode})
}

// checkScope answers 403 unless a manufacturer's factory makes this model
// and serial.
func (s *Server) checkScope(ctx context.Context, p Principal, model, serial string) error {
	f, err := s.factoryScope(ctx, p.Factory)
	if err != nil {
		return err
	}
	var se *mfg.ScopeError
	if err := f.CheckRow(model, serial); errors.As(err, &se) {
		return errorf(http.StatusForbidden, codeForbidden, "identity."+se.Field, "%s", se.Reason)
	} else if err != nil {
		return err
	}
	return nil
}

// caRegistry returns the CA registry, or 503 on a server without one.
func (s *Server) caRegistry() (CARegistry, error) {
	if s.cas == nil {
		return nil, errorf(http.StatusServiceUnavailable, codeUnavailable, "", "this server runs without a CA registry; factories, batches and CAs are not available")
	}
	return s.cas, nil
}

// canSeeFactory reports whether the principal may know the factory exists:
// a manufacturer knows only its own.
func (p Principal) canSeeFactory(name string) bool {
	return !p.scoped() || (p.Factory != "" && p.Factory == name)
}
