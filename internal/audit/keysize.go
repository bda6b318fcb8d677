package audit

import (
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Key algorithm and curve identifiers (RFC 5480, RFC 8410, RFC 3279).
var (
	oidRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidEC      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidDSA     = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}

	curveBits = map[string]struct {
		name string
		bits int
	}{
		"1.2.840.10045.3.1.1": {"P-192", 192}, "1.3.132.0.33": {"P-224", 224}, "1.2.840.10045.3.1.7": {"P-256", 256},
		"1.3.132.0.34": {"P-384", 384}, "1.3.132.0.35": {"P-521", 521}, "1.3.132.0.10": {"secp256k1", 256},
	}
)

// weakKey reports whether the certificate's public key is below the
// minimum sizes, and describes the key. It reads only the certificate's
// SubjectPublicKeyInfo, without parsing the whole certificate or the key:
// an audit reads every certificate of the fleet, and the size is all it
// needs.
func weakKey(certPEM string, p Params) (bool, string, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return false, "", errors.New("no PEM certificate")
	}
	alg, size, err := keySize(block.Bytes)
	if err != nil {
		return false, "", err
	}
	switch alg {
	case "RSA":
		return size < p.MinRSABits, fmt.Sprintf("RSA %d bits", size), nil
	case "Ed25519":
		return false, "Ed25519", nil
	case "DSA":
		return true, "DSA key", nil
	}
	if size == 0 {
		return true, "ECDSA on an unknown curve (" + alg + ")", nil
	}
	return size < p.MinECBits, fmt.Sprintf("ECDSA %s (%d bits)", alg, size), nil
}

// keySize reads the key algorithm ("RSA", "Ed25519", "DSA", or the curve
// name of an EC key) and its size in bits from a certificate's DER.
func keySize(der []byte) (string, int, error) {
	in := cryptobyte.String(der)
	var cert, tbs, spki, algo cryptobyte.String
	bad := errors.New("malformed certificate")
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipASN1(cbasn1.INTEGER) || // serial
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // signature algorithm
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // validity
		!tbs.SkipASN1(cbasn1.SEQUENCE) || // subject
		!tbs.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.ReadASN1(&algo, cbasn1.SEQUENCE) {
		return "", 0, bad
	}
	var oid asn1.ObjectIdentifier
	if !algo.ReadASN1ObjectIdentifier(&oid) {
		return "", 0, bad
	}
	switch {
	case oid.Equal(oidRSA):
		var key asn1.BitString
		var seq, n cryptobyte.String
		if !spki.ReadASN1BitString(&key) {
			return "", 0, bad
		}
		keyBytes := cryptobyte.String(key.Bytes)
		if !keyBytes.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&n, cbasn1.INTEGER) {
			return "", 0, bad
		}
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) == 0 {
			return "", 0, bad
		}
		return "RSA", (len(n)-1)*8 + bits.Len8(n[0]), nil
	case oid.Equal(oidEC):
		var curve asn1.ObjectIdentifier
		if !algo.ReadASN1ObjectIdentifier(&curve) {
			return "", 0, bad
		}
		c, ok := curveBits[curve.String()]
		if !ok {
			return curve.String(), 0, nil
		}
		return c.name, c.bits, nil
	case oid.Equal(oidEd25519):
		return "Ed25519", 256, nil
	case oid.Equal(oidDSA):
		return "DSA", 0, nil
	}
	return "", 0, fmt.Errorf("key algorithm %s", oid)
}
