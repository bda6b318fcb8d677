package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CSR admission limits.
const (
	// DefaultMaxCSRSize bounds the DER size of a CSR. Real device CSRs are
	// well under 2 KiB; the bound stops memory and CPU abuse before parsing.
	DefaultMaxCSRSize = 16 << 10
	// DefaultMinRSABits is the smallest RSA modulus accepted.
	DefaultMinRSABits = 2048
	// maxRSABits bounds RSA keys, whose verification cost grows with size.
	maxRSABits = 8192
)

// CSRError codes. They are stable identifiers for logs, metrics and
// provisioning records; the device itself is not told which one applied.
const (
	CSRMalformed      = "malformed"
	CSRTooLarge       = "too_large"
	CSRBadSignature   = "bad_signature"
	CSRWeakKey        = "weak_key"
	CSRUnsupportedKey = "unsupported_key"
	CSRCARequested    = "ca_requested"
	CSRExtraEKU       = "extra_eku"
)

// CSRError is why a CSR or a public key was refused.
type CSRError struct {
	Code   string // one of the CSR* codes
	Reason string // human-readable detail
}

func (e *CSRError) Error() string {
	return "pki: CSR refused (" + e.Code + "): " + e.Reason
}

func csrErrorf(code, format string, args ...any) *CSRError {
	return &CSRError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// CSRRules are the admission rules for device CSRs. The zero value accepts
// ECDSA P-256 and P-384 and RSA keys of 2048 to 8192 bits, up to
// DefaultMaxCSRSize bytes.
type CSRRules struct {
	// MaxSize is the largest DER CSR accepted; zero means DefaultMaxCSRSize.
	MaxSize int
	// MinRSABits is the smallest RSA modulus; zero means DefaultMinRSABits.
	MinRSABits int
	// RejectRSA refuses RSA keys altogether.
	RejectRSA bool
	// AllowEd25519 accepts Ed25519 keys, which not every TLS peer supports.
	AllowEd25519 bool
}

// CheckCSR parses a DER CSR and applies rules: size, key algorithm and
// strength, signature, and the extensions it requests. Failures are
// *CSRError. The CSR's requested extensions are only inspected, never
// copied: certificates get their contents from a Profile. A device asking
// to be a CA or for extra usages is still refused, because such a request
// signals a compromised or misconfigured device worth recording.
func CheckCSR(der []byte, rules CSRRules) (*x509.CertificateRequest, error) {
	maxSize := rules.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxCSRSize
	}
	if len(der) > maxSize {
		return nil, csrErrorf(CSRTooLarge, "CSR is %d bytes, at most %d allowed", len(der), maxSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		if alg, ok := unsupportedKeyAlgorithm(der); ok {
			return nil, csrErrorf(CSRUnsupportedKey, "public key algorithm %s is not supported", alg)
		}
		return nil, csrErrorf(CSRMalformed, "cannot parse CSR: %v", err)
	}
	if err := checkPublicKey(csr.PublicKey, rules); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, csrErrorf(CSRBadSignature, "%v", err)
	}
	if err := checkRequestedExtensions(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkPublicKey applies the key rules. Issue uses it too, so a key that
// bypassed CheckCSR (a minted or registered one) meets the same bar.
func checkPublicKey(pub crypto.PublicKey, rules CSRRules) *CSRError {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		case elliptic.P224():
			return csrErrorf(CSRWeakKey, "ECDSA curve P-224 is too weak; use P-256 or P-384")
		default:
			return csrErrorf(CSRUnsupportedKey, "ECDSA curve %s is not supported; use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		minBits := rules.MinRSABits
		if minBits <= 0 {
			minBits = DefaultMinRSABits
		}
		switch bits := k.N.BitLen(); {
		case rules.RejectRSA:
			return csrErrorf(CSRUnsupportedKey, "RSA keys are not accepted; use ECDSA P-256 or P-384")
		case bits < minBits:
			return csrErrorf(CSRWeakKey, "RSA key of %d bits is too weak; at least %d required", bits, minBits)
		case bits > maxRSABits:
			return csrErrorf(CSRUnsupportedKey, "RSA key of %d bits is too large; at most %d supported", bits, maxRSABits)
		}
		return nil
	case ed25519.PublicKey:
		if rules.AllowEd25519 {
			return nil
		}
		return csrErrorf(CSRUnsupportedKey, "Ed25519 keys are not accepted; use ECDSA P-256 or P-384")
	case nil:
		return csrErrorf(CSRUnsupportedKey, "public key algorithm not recognised")
	default:
		return csrErrorf(CSRUnsupportedKey, "public key type %T is not supported", pub)
	}
}

// Object identifiers inspected in CSRs. They are never modified.
var (
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidEKUClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidPublicKeyRSA        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidPublicKeyECDSA      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidPublicKeyEd25519    = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// Key usage bits that only a CA needs (RFC 5280 section 4.2.1.3).
const (
	keyUsageBitCertSign = 5
	keyUsageBitCRLSign  = 6
)

// checkRequestedExtensions refuses CA-ness and usages beyond clientAuth.
func checkRequestedExtensions(csr *x509.CertificateRequest) *CSRError {
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidExtBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if err := unmarshalDER(ext.Value, &bc); err != nil {
				return csrErrorf(CSRMalformed, "requested basic constraints: %v", err)
			}
			if bc.IsCA {
				return csrErrorf(CSRCARequested, "CSR requests basic constraints CA:TRUE")
			}
		case ext.Id.Equal(oidExtKeyUsage):
			var ku asn1.BitString
			if err := unmarshalDER(ext.Value, &ku); err != nil {
				return csrErrorf(CSRMalformed, "requested key usage: %v", err)
			}
			if ku.At(keyUsageBitCertSign) == 1 || ku.At(keyUsageBitCRLSign) == 1 {
				return csrErrorf(CSRCARequested, "CSR requests the keyCertSign or cRLSign key usage")
			}
		case ext.Id.Equal(oidExtExtKeyUsage):
			var ekus []asn1.ObjectIdentifier
			if err := unmarshalDER(ext.Value, &ekus); err != nil {
				return csrErrorf(CSRMalformed, "requested extended key usage: %v", err)
			}
			for _, eku := range ekus {
				if !eku.Equal(oidEKUClientAuth) {
					return csrErrorf(CSRExtraEKU, "CSR requests extended key usage %s; only clientAuth is allowed", eku)
				}
			}
		}
	}
	return nil
}

// unsupportedKeyAlgorithm looks inside a CSR that crypto/x509 refused and
// reports whether the refusal was about the key algorithm (an unknown
// curve such as secp256k1, or an unknown algorithm), so that the caller
// gets unsupported_key rather than malformed.
func unsupportedKeyAlgorithm(der []byte) (string, bool) {
	input := cryptobyte.String(der)
	var req, info, spki, alg cryptobyte.String
	var algOID asn1.ObjectIdentifier
	if !input.ReadASN1(&req, cbasn1.SEQUENCE) ||
		!req.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!info.SkipASN1(cbasn1.INTEGER) ||
		!info.SkipASN1(cbasn1.SEQUENCE) ||
		!info.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!spki.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&algOID) {
		return "", false
	}
	switch {
	case algOID.Equal(oidPublicKeyECDSA):
		var curve asn1.ObjectIdentifier
		if !alg.ReadASN1ObjectIdentifier(&curve) {
			return "", false
		}
		if isStandardCurve(curve) {
			// A curve crypto/x509 knows, so the key itself was broken.
			return "", false
		}
		return "ECDSA with curve " + curve.String(), true
	case algOID.Equal(oidPublicKeyRSA), algOID.Equal(oidPublicKeyEd25519):
		return "", false
	default:
		return algOID.String(), true
	}
}

// isStandardCurve reports whether oid names P-224, P-256, P-384 or P-521
// (RFC 5480), the curves crypto/x509 parses.
func isStandardCurve(oid asn1.ObjectIdentifier) bool {
	for _, known := range []asn1.ObjectIdentifier{
		{1, 3, 132, 0, 33},
		{1, 2, 840, 10045, 3, 1, 7},
		{1, 3, 132, 0, 34},
		{1, 3, 132, 0, 35},
	} {
		if oid.Equal(known) {
			return true
		}
	}
	return false
}
