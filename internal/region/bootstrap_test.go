package region

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testChain makes a root and a leaf signed by it with key, for eku.
func testChain(t testing.TB, key crypto.Signer, eku x509.ExtKeyUsage) (*x509.CertPool, []*x509.Certificate) {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{eku}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool, []*x509.Certificate{leaf, root}
}

func testDoc(now time.Time) *Document {
	return &Document{Issuer: "muster", Node: "eu", IssuedAt: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
		Regions: []Entry{{Name: "eu", ProbeURL: "https://eu/v1/probe"}, {Name: "us", ProbeURL: "https://us/v1/probe"}}}
}

func TestBootstrapSignVerify(t *testing.T) {
	now := time.Now()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, key := range map[string]crypto.Signer{"ES256": ec, "ES384": ec384, "RS256": rsaKey} {
		t.Run(name, func(t *testing.T) {
			roots, chain := testChain(t, key, x509.ExtKeyUsageServerAuth)
			jws, err := SignBootstrap(testDoc(now), key, chain)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := VerifyBootstrap(jws, roots, now)
			if err != nil {
				t.Fatalf("VerifyBootstrap: %v", err)
			}
			if len(doc.Regions) != 2 || doc.Regions[1].ProbeURL != "https://us/v1/probe" {
				t.Errorf("document = %+v", doc)
			}
		})
	}

	roots, chain := testChain(t, ec, x509.ExtKeyUsageServerAuth)
	jws, err := SignBootstrap(testDoc(now), ec, chain)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jws, ".")
	// A payload with another probe URL, under the original signature.
	forged := testDoc(now)
	forged.Regions[0].ProbeURL = "https://attacker/v1/probe"
	forgedJWS, _ := SignBootstrap(forged, ec, chain)
	tampered := parts[0] + "." + strings.Split(forgedJWS, ".")[1] + "." + parts[2]

	otherRoots, _ := testChain(t, ec, x509.ExtKeyUsageServerAuth)
	clientRoots, clientChain := testChain(t, ec, x509.ExtKeyUsageClientAuth)
	clientSigned, _ := SignBootstrap(testDoc(now), ec, clientChain)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongKey, _ := SignBootstrap(testDoc(now), other, chain) // signed by a key that is not the certificate's

	for _, tc := range []struct {
		name  string
		jws   string
		roots *x509.CertPool
		at    time.Time
		want  string
	}{
		{"tampered payload", tampered, roots, now, "bad signature"},
		{"signed by another key", wrongKey, roots, now, "bad signature"},
		{"untrusted root", jws, otherRoots, now, "not trusted"},
		{"a client certificate signs", clientSigned, clientRoots, now, "not trusted"},
		{"expired", jws, roots, now.Add(12 * time.Minute), "expired"},
		{"from the future", jws, roots, now.Add(-5 * time.Minute), "future"},
		{"not a JWS", "abc", roots, now, "not a compact JWS"},
		{"garbage header", base64.RawURLEncoding.EncodeToString([]byte("{}")) + "." + parts[1] + "." + parts[2], roots, now, "not a Muster bootstrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := VerifyBootstrap(tc.jws, tc.roots, tc.at); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyBootstrap = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
