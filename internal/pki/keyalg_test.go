package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"
)

func TestParseKeyAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    KeyAlgorithm
		wantErr bool
	}{
		{"", ECDSAP256, false},
		{"ecdsa-p256", ECDSAP256, false},
		{" ECDSA-P384 ", ECDSAP384, false},
		{"rsa-3072", RSA3072, false},
		{"rsa-2048", "", true},
		{"ed25519", "", true},
	}
	for _, tt := range tests {
		got, err := ParseKeyAlgorithm(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKeyAlgorithm(%q) = %q, %v; want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "ecdsa-p256") {
			t.Errorf("error %q does not list the valid algorithms", err)
		}
	}
}

func TestGenerateKeyECDSA(t *testing.T) {
	for alg, curve := range map[KeyAlgorithm]elliptic.Curve{ECDSAP256: elliptic.P256(), ECDSAP384: elliptic.P384()} {
		key, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := key.Public().(*ecdsa.PublicKey)
		if !ok || pub.Curve != curve {
			t.Fatalf("%s: got %T", alg, key.Public())
		}
		if got, err := algorithmOf(pub); err != nil || got != alg {
			t.Errorf("algorithmOf(%s key) = %q, %v", alg, got, err)
		}
	}
	if _, err := GenerateKey("dsa-1024"); err == nil {
		t.Error("GenerateKey accepted an unknown algorithm")
	}
	if _, err := algorithmOf(newP224(t).Public()); err == nil {
		t.Error("algorithmOf accepted P-224")
	}
}

// TestRSA3072 is the one test that pays for an RSA-3072 key generation: it
// checks the size and that the encrypted PKCS#8 form of an RSA key is
// readable by openssl.
func TestRSA3072(t *testing.T) {
	key, err := GenerateKey(RSA3072)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 3072 {
		t.Fatalf("got %T", key.Public())
	}
	if got, err := algorithmOf(pub); err != nil || got != RSA3072 {
		t.Fatalf("algorithmOf = %q, %v", got, err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl binary not installed")
	}
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := encryptPKCS8(plain, []byte(testPassphrase), minPBKDF2Iterations)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "rsa.pem", pem.EncodeToMemory(&pem.Block{Type: pemTypeEncryptedKey, Bytes: der}))
	out := openssl(t, false, "pkey", "-in", path, "-passin", "pass:"+testPassphrase, "-noout", "-text")
	if !strings.Contains(out, "Private-Key: (3072 bit") {
		t.Errorf("openssl did not read a 3072-bit key:\n%s", out)
	}
}
