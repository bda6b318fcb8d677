package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyAlgorithm names a key type and size that Muster generates, both for CA
// keys and for device keys it mints on a manufacturer's behalf.
type KeyAlgorithm string

// The supported key algorithms. ECDSA P-256 is the default because every
// TLS stack on constrained devices supports it and it signs fastest.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	ECDSAP384 KeyAlgorithm = "ecdsa-p384"
	RSA3072   KeyAlgorithm = "rsa-3072"

	// DefaultKeyAlgorithm is used when no algorithm is configured.
	DefaultKeyAlgorithm = ECDSAP256
)

// rsaBits is the modulus size for RSA3072.
const rsaBits = 3072

// ParseKeyAlgorithm parses a configured algorithm name, case-insensitively.
// The empty string selects DefaultKeyAlgorithm.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	switch alg := KeyAlgorithm(strings.ToLower(strings.TrimSpace(s))); alg {
	case "":
		return DefaultKeyAlgorithm, nil
	case ECDSAP256, ECDSAP384, RSA3072:
		return alg, nil
	default:
		return "", fmt.Errorf("pki: unknown key algorithm %q: use one of %s, %s, %s", s, ECDSAP256, ECDSAP384, RSA3072)
	}
}

// String returns the configuration name of the algorithm.
func (a KeyAlgorithm) String() string { return string(a) }

// GenerateKey creates a new private key in memory. It is meant for device
// keys minted by Muster; CA keys go through a KeyStore instead.
func GenerateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return nil, fmt.Errorf("pki: cannot generate key: unknown key algorithm %q", alg)
	}
}

// algorithmOf reports which KeyAlgorithm produced pub, so that a rotated CA
// keeps the algorithm of the CA it replaces.
func algorithmOf(pub crypto.PublicKey) (KeyAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("pki: unsupported elliptic curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() == rsaBits {
			return RSA3072, nil
		}
		return "", fmt.Errorf("pki: unsupported RSA key size %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "", fmt.Errorf("pki: Ed25519 CA keys are not supported")
	default:
		return "", fmt.Errorf("pki: unsupported public key type %T", pub)
	}
}
