package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrWrongIssuer means a profile was presented to a CA of the wrong
// purpose, e.g. a birth profile to the operational CA.
var ErrWrongIssuer = errors.New("profile not issuable by this CA")

// Issue signs an end-entity certificate for pub under profile. The
// certificate never outlives the CA: its NotAfter is clamped to the CA's.
func (c *CA) Issue(ctx context.Context, profile Profile, pub crypto.PublicKey) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if want := profile.IssuerPurpose(); want != c.purpose {
		return nil, fmt.Errorf("pki: %T needs a %s CA, not the %s CA %q: %w", profile, want, c.purpose, c.cert.Subject.CommonName, ErrWrongIssuer)
	}
	// The loosest CSR rules: Issue refuses only keys that are weak or
	// unsupported under every configuration; CheckCSR applies the rest.
	if err := checkPublicKey(pub, CSRRules{AllowEd25519: true}); err != nil {
		return nil, fmt.Errorf("pki: refuse to certify key: %w", err)
	}
	now := time.Now()
	if !now.Before(c.cert.NotAfter) {
		return nil, fmt.Errorf("pki: CA %q expired at %s; rotate it", c.cert.Subject.CommonName, c.cert.NotAfter.UTC())
	}
	tmpl, err := profile.Template(now)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = randomSerial()
	tmpl.SubjectKeyId = ski
	// Profiles describe end entities; whatever a profile says, the result
	// must never be usable as a CA.
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, false
	tmpl.KeyUsage &^= x509.KeyUsageCertSign | x509.KeyUsageCRLSign

	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse issued certificate: %w", err)
	}
	return cert, nil
}
