package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
)

// subjectPublicKeyInfo mirrors the SPKI structure so the raw key bits can
// be hashed the way RFC 5280 (key identifiers) and RFC 6960 (OCSP issuer
// key hash) require.
type subjectPublicKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// publicKeyBits returns the contents of the subjectPublicKey BIT STRING of
// a DER SubjectPublicKeyInfo.
func publicKeyBits(spkiDER []byte) ([]byte, error) {
	var spki subjectPublicKeyInfo
	if err := unmarshalDER(spkiDER, &spki); err != nil {
		return nil, fmt.Errorf("pki: parse public key: %w", err)
	}
	return spki.PublicKey.RightAlign(), nil
}

// subjectKeyID computes a key identifier by RFC 7093 method 1: the leftmost
// 160 bits of the SHA-256 of the subjectPublicKey bits. It is set
// explicitly (rather than left to crypto/x509) so that a rotated CA and the
// certificates it issues link by a value we control and can document.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: encode public key: %w", err)
	}
	bits, err := publicKeyBits(spki)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bits)
	return sum[:20], nil
}

// PublicKeyFingerprint returns the hex SHA-256 of the key's DER
// SubjectPublicKeyInfo. Two devices presenting the same fingerprint share
// a key, which is a cloning or weak-RNG signal. It fails only for key types
// crypto/x509 cannot encode.
func PublicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pki: fingerprint public key: %w", err)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:]), nil
}
