package ca

import (
	"context"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// Possession challenge lifetimes.
const (
	DefaultChallengeTTL = time.Hour
	MaxChallengeTTL     = 7 * 24 * time.Hour
)

// FactoryRequest registers a factory and the CA that anchors its birth
// certificates.
type FactoryRequest struct {
	// Factory has been validated by the caller (mfg.NewFactory); its
	// CAMode says which CA it gets.
	Factory store.Factory
	// For an external CA: the maker's CA certificate, a verification
	// certificate signed with that CA's key whose common name is Nonce,
	// and Nonce, issued by Challenge for this factory.
	CACertPEM           []byte
	VerificationCertPEM []byte
	Nonce               string
}

// AddFactory registers a factory with its CA, in one transaction with the
// factory.created audit event: a managed factory gets a new manufacturing
// CA signed by the root; an external one gets the maker's CA as its trust
// anchor once the verification certificate proves the maker holds the CA's
// key (pki.VerifyPossession) and the nonce is used up. A possession failure
// wraps pki.ErrPossession or pki.ErrExternalCA, a bad nonce
// store.ErrChallenge, a taken name store.ErrDuplicate.
func (r *Registry) AddFactory(ctx context.Context, req FactoryRequest, actor string) (*Authority, error) {
	f := req.Factory
	var a *Authority
	switch f.CAMode {
	case "external":
		cert, err := ParseCertificatePEM(req.CACertPEM)
		if err != nil {
			return nil, fmt.Errorf("ca: the maker's CA certificate: %w: %w", err, pki.ErrExternalCA)
		}
		if err := pki.VerifyPossession(cert, req.VerificationCertPEM, req.Nonce); err != nil {
			return nil, err
		}
		a = &Authority{CA: record(cert, PurposeExternal, f.Name), Cert: cert}
	default:
		root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
		if err != nil {
			return nil, err
		}
		row, signer, err := r.create(ctx, pki.PurposeManufacturing, f.Name, root.Signer)
		if err != nil {
			return nil, err
		}
		a = &Authority{CA: row, Cert: signer.Certificate(), Signer: signer}
		req.Nonce = ""
	}
	if err := r.st.CreateFactory(ctx, store.NewFactory{Factory: &f, CA: &a.CA, Nonce: req.Nonce}, actor); err != nil {
		return nil, err
	}
	if a.Signer != nil {
		r.keep(a.ID, a.Signer)
	}
	r.invalidate()
	return a, nil
}

// Challenge issues a possession nonce for registering an external CA for
// factory, good once within ttl (DefaultChallengeTTL when zero, at most
// MaxChallengeTTL).
func (r *Registry) Challenge(ctx context.Context, factory string, ttl time.Duration, actor string) (*store.Challenge, error) {
	switch {
	case ttl == 0:
		ttl = DefaultChallengeTTL
	case ttl < 0 || ttl > MaxChallengeTTL:
		return nil, fmt.Errorf("ca: a challenge lives from 1s to %v, not %v", MaxChallengeTTL, ttl)
	}
	c := &store.Challenge{Nonce: pki.NewPossessionChallenge(), Factory: factory, ExpiresAt: r.now().Add(ttl)}
	if err := r.st.CreateChallenge(ctx, c, actor); err != nil {
		return nil, err
	}
	return c, nil
}
