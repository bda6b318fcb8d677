package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrPossession means a proof of possession failed.
var ErrPossession = errors.New("proof of possession failed")

// ErrExternalCA means a certificate cannot be registered as an external
// manufacturer CA.
var ErrExternalCA = errors.New("unusable external manufacturer CA")

// challengeBytes is the nonce entropy: 32 bytes, 64 hex characters, the
// most that fits the 64-character limit of a common name.
const challengeBytes = 32

// NewPossessionChallenge returns a fresh nonce for VerifyPossession. The
// caller stores it with the pending registration and expires it.
func NewPossessionChallenge() string {
	b := make([]byte, challengeBytes)
	// crypto/rand.Read never fails (it aborts the program instead).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// VerifyPossession checks that whoever registers caCert holds its private
// key: verificationCertPEM must be a certificate signed by caCert whose
// subject common name is the nonce from NewPossessionChallenge. A maker
// produces it with, for example:
//
//	openssl req -new -key verif.key -subj "/CN=<nonce>" -out verif.csr
//	openssl x509 -req -in verif.csr -CA maker.pem -CAkey maker.key -out verif.pem
//
// The key in the verification certificate is irrelevant; only the CA's
// signature over the nonce counts.
func VerifyPossession(caCert *x509.Certificate, verificationCertPEM []byte, nonce string) error {
	if err := ValidateExternalCA(caCert); err != nil {
		return err
	}
	if nonce == "" {
		return fmt.Errorf("pki: empty challenge: %w", ErrPossession)
	}
	cert, err := parseCertificatePEM(verificationCertPEM)
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrPossession)
	}
	if !bytes.Equal(cert.RawIssuer, caCert.RawSubject) {
		return fmt.Errorf("pki: verification certificate issuer %q is not the CA %q: %w", cert.Issuer, caCert.Subject, ErrPossession)
	}
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		return fmt.Errorf("pki: verification certificate is not signed by the CA's key: %v: %w", err, ErrPossession)
	}
	if subtle.ConstantTimeCompare([]byte(cert.Subject.CommonName), []byte(nonce)) != 1 {
		return fmt.Errorf("pki: verification certificate common name %q is not the challenge; request a new challenge and put it in the CN: %w", cert.Subject.CommonName, ErrPossession)
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("pki: verification certificate is valid only from %s to %s: %w", cert.NotBefore.UTC(), cert.NotAfter.UTC(), ErrPossession)
	}
	return nil
}

// ValidateExternalCA checks that cert can serve as an external
// manufacturer CA: a currently valid CA certificate allowed to sign
// certificates, with a strong key and signature, whose extended key usage
// (if any) permits client authentication, since birth certificates are
// used as TLS client certificates.
func ValidateExternalCA(cert *x509.Certificate) error {
	if cert == nil {
		return fmt.Errorf("pki: no certificate: %w", ErrExternalCA)
	}
	name := cert.Subject.String()
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("pki: %q is not a CA certificate (basic constraints CA:TRUE missing): %w", name, ErrExternalCA)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("pki: %q may not sign certificates (key usage keyCertSign missing): %w", name, ErrExternalCA)
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("pki: %q is valid only from %s to %s: %w", name, cert.NotBefore.UTC(), cert.NotAfter.UTC(), ErrExternalCA)
	}
	if len(cert.ExtKeyUsage) > 0 &&
		!slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return fmt.Errorf("pki: %q restricts extended key usage without clientAuth, so its birth certificates could not authenticate: %w", name, ErrExternalCA)
	}
	if err := checkCAKey(cert.PublicKey); err != nil {
		return fmt.Errorf("pki: %q: %w: %w", name, err, ErrExternalCA)
	}
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, x509.UnknownSignatureAlgorithm:
		return fmt.Errorf("pki: %q is signed with the weak or unknown algorithm %s: %w", name, cert.SignatureAlgorithm, ErrExternalCA)
	}
	return nil
}

// checkCAKey applies the device key rules to a CA key, plus P-521, which
// some makers use for long-lived roots.
func checkCAKey(pub crypto.PublicKey) error {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P521() {
		return nil
	}
	if err := checkPublicKey(pub, CSRRules{AllowEd25519: true}); err != nil {
		return fmt.Errorf("CA key: %s", err.Reason)
	}
	return nil
}
