package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"testing"
)

// makeCSR builds a DER CSR for key with the given requested extensions.
func makeCSR(t testing.TB, key crypto.Signer, exts ...pkix.Extension) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "device"},
		ExtraExtensions: exts,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckCSR(t *testing.T) {
	p256, p384 := newP256(t), mustECDSA(t, elliptic.P384())
	rsa2048, rsa1024 := newRSA(t, 2048), newRSA(t, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	badSig := makeCSR(t, p256)
	badSig[len(badSig)-3] ^= 0x01 // inside the signature

	// secp256k1 is not parsed by crypto/x509: patch a P-384 CSR's curve OID
	// (1.3.132.0.34) to secp256k1's (1.3.132.0.10), same length.
	secp256k1 := bytes.Replace(makeCSR(t, p384), []byte{0x2b, 0x81, 0x04, 0x00, 0x22}, []byte{0x2b, 0x81, 0x04, 0x00, 0x0a}, 1)

	// Ed448 (1.3.101.113) is an algorithm crypto/x509 does not know at all:
	// patch an Ed25519 CSR's key algorithm (1.3.101.112).
	ed448 := bytes.Replace(makeCSR(t, edKey), []byte{0x06, 0x03, 0x2b, 0x65, 0x70, 0x03}, []byte{0x06, 0x03, 0x2b, 0x65, 0x71, 0x03}, 1)

	caTrue := pkix.Extension{Id: oidExtBasicConstraints, Critical: true, Value: mustMarshal(t, struct{ IsCA bool }{true})}
	caFalse := pkix.Extension{Id: oidExtBasicConstraints, Value: mustMarshal(t, struct{}{})}
	certSign := pkix.Extension{Id: oidExtKeyUsage, Value: mustMarshal(t, asn1.BitString{Bytes: []byte{0x84}, BitLength: 6})} // digitalSignature, keyCertSign
	digitalSig := pkix.Extension{Id: oidExtKeyUsage, Value: mustMarshal(t, asn1.BitString{Bytes: []byte{0x80}, BitLength: 1})}
	clientAuth := pkix.Extension{Id: oidExtExtKeyUsage, Value: mustMarshal(t, []asn1.ObjectIdentifier{oidEKUClientAuth})}
	serverAuth := pkix.Extension{Id: oidExtExtKeyUsage, Value: mustMarshal(t, []asn1.ObjectIdentifier{oidEKUClientAuth, {1, 3, 6, 1, 5, 5, 7, 3, 1}})}
	badEKU := pkix.Extension{Id: oidExtExtKeyUsage, Value: []byte{0x04, 0x01, 0x00}}

	tests := []struct {
		name  string
		der   []byte
		rules CSRRules
		code  string // "" means accepted
	}{
		{"P-256", makeCSR(t, p256), CSRRules{}, ""},
		{"P-384", makeCSR(t, p384), CSRRules{}, ""},
		{"RSA-2048", makeCSR(t, rsa2048), CSRRules{}, ""},
		{"clientAuth, CA:FALSE, digitalSignature", makeCSR(t, p256, clientAuth, caFalse, digitalSig), CSRRules{}, ""},
		{"Ed25519 allowed", makeCSR(t, edKey), CSRRules{AllowEd25519: true}, ""},

		{"garbage", []byte("definitely not a CSR"), CSRRules{}, CSRMalformed},
		{"empty", nil, CSRRules{}, CSRMalformed},
		{"truncated", makeCSR(t, p256)[:100], CSRRules{}, CSRMalformed},
		{"too large", makeCSR(t, p256), CSRRules{MaxSize: 64}, CSRTooLarge},
		{"too large by default", make([]byte, DefaultMaxCSRSize+1), CSRRules{}, CSRTooLarge},
		{"bad signature", badSig, CSRRules{}, CSRBadSignature},
		{"RSA-1024", makeCSR(t, rsa1024), CSRRules{}, CSRWeakKey},
		{"RSA-2048 below raised minimum", makeCSR(t, rsa2048), CSRRules{MinRSABits: 3072}, CSRWeakKey},
		{"P-224", makeCSR(t, newP224(t)), CSRRules{}, CSRWeakKey},
		{"P-521", makeCSR(t, mustECDSA(t, elliptic.P521())), CSRRules{}, CSRUnsupportedKey},
		{"secp256k1", secp256k1, CSRRules{}, CSRUnsupportedKey},
		{"Ed448", ed448, CSRRules{AllowEd25519: true}, CSRUnsupportedKey},
		{"Ed25519 not allowed", makeCSR(t, edKey), CSRRules{}, CSRUnsupportedKey},
		{"RSA rejected", makeCSR(t, rsa2048), CSRRules{RejectRSA: true}, CSRUnsupportedKey},
		{"CA:TRUE", makeCSR(t, p256, caTrue), CSRRules{}, CSRCARequested},
		{"keyCertSign", makeCSR(t, p256, certSign), CSRRules{}, CSRCARequested},
		{"serverAuth EKU", makeCSR(t, p256, serverAuth), CSRRules{}, CSRExtraEKU},
		{"malformed EKU", makeCSR(t, p256, badEKU), CSRRules{}, CSRMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := CheckCSR(tt.der, tt.rules)
			if tt.code == "" {
				if err != nil || csr == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *CSRError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *CSRError %s", err, err, tt.code)
			}
			if ce.Code != tt.code || ce.Reason == "" {
				t.Errorf("code %q reason %q, want code %q", ce.Code, ce.Reason, tt.code)
			}
			if csr != nil {
				t.Error("a refused CSR was returned")
			}
		})
	}
}

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPublicKeyFingerprint(t *testing.T) {
	a, b := newP256(t), newP256(t)
	fa, err := PublicKeyFingerprint(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(a.Public())
	sum := sha256.Sum256(spki)
	if fa != hex.EncodeToString(sum[:]) || len(fa) != 64 {
		t.Errorf("fingerprint %s is not the hex SHA-256 of the SPKI", fa)
	}
	// The same key reached through a CSR gives the same fingerprint.
	csr, err := CheckCSR(makeCSR(t, a), CSRRules{})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := PublicKeyFingerprint(csr.PublicKey); again != fa {
		t.Error("fingerprint not stable across encodings")
	}
	if fb, _ := PublicKeyFingerprint(b.Public()); fb == fa {
		t.Error("different keys share a fingerprint")
	}
	if _, err := PublicKeyFingerprint(struct{}{}); err == nil {
		t.Error("fingerprinted an unsupported key type")
	}
}
