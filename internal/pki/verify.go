package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Verification errors, for errors.Is. Wrapped errors carry the detail for
// logs; the device should only ever see a failed handshake.
var (
	// ErrUntrusted means the chain does not lead to an anchor that may vouch
	// for this kind of certificate, or the certificate is not a device
	// certificate.
	ErrUntrusted = errors.New("client certificate not trusted")
	// ErrRevoked means a certificate in the chain is revoked.
	ErrRevoked = errors.New("client certificate revoked")
	// ErrExpired means a certificate in the chain is outside its validity
	// period (expired or not yet valid).
	ErrExpired = errors.New("client certificate expired or not yet valid")
)

// maxPresentedChain bounds how many certificates a client may present, to
// bound path-building work per handshake.
const maxPresentedChain = 8

// Anchors are the certificates a Verifier trusts, separated by what each
// may vouch for. Anchors need not be self-signed: Muster's own issuing CAs
// are anchors themselves, so trusting the operational CA never implies
// trusting anything else the root signed.
type Anchors struct {
	// Manufacturing are Muster manufacturing CAs. Only they may vouch for
	// certificates carrying the Muster birth policy.
	Manufacturing []*x509.Certificate
	// ExternalManufacturers are registered external manufacturer CAs. They
	// vouch for birth certificates in their makers' own formats, and never
	// for certificates claiming a Muster policy.
	ExternalManufacturers []*x509.Certificate
	// Operational are Muster operational CAs, including superseded ones
	// still within their rotation overlap.
	Operational []*x509.Certificate
	// Intermediates help build paths when clients omit them (for example
	// an external maker's intermediate CA). They confer no trust.
	Intermediates []*x509.Certificate
}

// TrustSource supplies the current trust anchors. It is called on every
// verification, so implementations should cache.
type TrustSource interface {
	Anchors(ctx context.Context) (Anchors, error)
}

// RevocationChecker reports whether the certificate with serial, issued by
// issuer, is revoked.
type RevocationChecker interface {
	IsRevoked(ctx context.Context, issuer *x509.Certificate, serial *big.Int) (bool, error)
}

// Verifier authenticates devices by their client certificates.
type Verifier struct {
	trust      TrustSource
	revocation RevocationChecker
}

// NewVerifier returns a Verifier. Both arguments are required: verifying
// without revocation checks would let revoked devices connect.
func NewVerifier(trust TrustSource, revocation RevocationChecker) (*Verifier, error) {
	if trust == nil || revocation == nil {
		return nil, errors.New("pki: a verifier needs both a trust source and a revocation checker")
	}
	return &Verifier{trust: trust, revocation: revocation}, nil
}

// Verify checks a client's certificate chain (leaf first, as presented in
// TLS) at time now and returns the identity it proves. Operational
// certificates must chain to an operational anchor, Muster birth
// certificates to a Muster manufacturing anchor, and certificates without a
// Muster policy to an external manufacturer anchor; no other combination is
// accepted. Every certificate below the anchor is checked for revocation,
// failing closed if the checker fails.
func (v *Verifier) Verify(ctx context.Context, chain []*x509.Certificate, now time.Time) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, fmt.Errorf("pki: no client certificate presented: %w", ErrUntrusted)
	}
	if len(chain) > maxPresentedChain {
		return Identity{}, fmt.Errorf("pki: client presented %d certificates, at most %d allowed: %w", len(chain), maxPresentedChain, ErrUntrusted)
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return Identity{}, fmt.Errorf("pki: certificate %q valid from %s to %s, now is %s: %w",
			leaf.Subject.CommonName, leaf.NotBefore.UTC(), leaf.NotAfter.UTC(), now.UTC(), ErrExpired)
	}
	anchors, err := v.trust.Anchors(ctx)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: load trust anchors: %w", err)
	}

	var id Identity
	var roots []*x509.Certificate
	if hasPolicy(leaf, BirthPolicyOID) || hasPolicy(leaf, OperationalPolicyOID) {
		if id, err = IdentityOf(leaf); err != nil {
			return Identity{}, fmt.Errorf("%w: %w", err, ErrUntrusted)
		}
		roots = anchors.Manufacturing
		if id.Kind == IdentityOperational {
			roots = anchors.Operational
		}
	} else {
		id = externalBirthIdentity(leaf)
		roots = anchors.ExternalManufacturers
	}

	chains, err := leaf.Verify(x509.VerifyOptions{
		// Always a non-nil pool: a nil Roots would mean the system roots.
		Roots:         poolOf(roots),
		Intermediates: poolOf(anchors.Intermediates, chain[1:]),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		what := fmt.Sprintf("%s certificate %q", id.Kind, leaf.Subject.CommonName)
		if id.External {
			what = fmt.Sprintf("certificate %q (no Muster policy, so checked against external manufacturer CAs)", leaf.Subject.CommonName)
		}
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return Identity{}, fmt.Errorf("pki: %s: %w: %w", what, err, ErrExpired)
		}
		return Identity{}, fmt.Errorf("pki: %s: %w: %w", what, err, ErrUntrusted)
	}
	verified := chains[0]
	for i := 0; i+1 < len(verified); i++ {
		cert, issuer := verified[i], verified[i+1]
		revoked, err := v.revocation.IsRevoked(ctx, issuer, cert.SerialNumber)
		if err != nil {
			return Identity{}, fmt.Errorf("pki: revocation check for %q (serial %x): %w", cert.Subject.CommonName, cert.SerialNumber, err)
		}
		if revoked {
			return Identity{}, fmt.Errorf("pki: certificate %q (serial %x): %w", cert.Subject.CommonName, cert.SerialNumber, ErrRevoked)
		}
	}
	id.Chain = verified
	return id, nil
}

// VerifyPeerCertificate returns a function for
// tls.Config.VerifyPeerCertificate. Use it with ClientAuth set to
// tls.RequireAnyClientCert, so that crypto/tls leaves verification to it.
// ctx bounds the trust and revocation lookups; for a per-connection
// context, build the config in GetConfigForClient from the hello's
// Context(). Handlers obtain the identity by calling Verify (or IdentityOf)
// on the connection's PeerCertificates.
func (v *Verifier) VerifyPeerCertificate(ctx context.Context) func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) > maxPresentedChain {
			return fmt.Errorf("pki: client presented %d certificates, at most %d allowed: %w", len(rawCerts), maxPresentedChain, ErrUntrusted)
		}
		certs := make([]*x509.Certificate, 0, len(rawCerts))
		for _, raw := range rawCerts {
			cert, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("pki: parse client certificate: %w: %w", err, ErrUntrusted)
			}
			certs = append(certs, cert)
		}
		_, err := v.Verify(ctx, certs, time.Now())
		return err
	}
}

// poolOf builds a certificate pool from certificate lists.
func poolOf(lists ...[]*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, list := range lists {
		for _, c := range list {
			pool.AddCert(c)
		}
	}
	return pool
}
