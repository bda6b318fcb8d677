package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// TestKeySize reads the key size of certificates of every key type Muster
// may meet and judges them against the default minimums.
func TestKeySize(t *testing.T) {
	f := &fixture{t: t}
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec := func(c elliptic.Curve) crypto.Signer { k, _ := ecdsa.GenerateKey(c, rand.Reader); return k }
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		key  crypto.Signer
		desc string
		weak bool
	}{
		{rsa1024, "RSA 1024 bits", true}, {rsa2048, "RSA 2048 bits", false},
		{ec(elliptic.P224()), "ECDSA P-224 (224 bits)", true}, {ec(elliptic.P256()), "ECDSA P-256 (256 bits)", false},
		{ec(elliptic.P384()), "ECDSA P-384 (384 bits)", false}, {ec(elliptic.P521()), "ECDSA P-521 (521 bits)", false},
		{ed, "Ed25519", false},
	} {
		cert := f.certWithKey(c.key, epoch, time.Hour)
		weak, desc, err := weakKey(cert.CertPEM, Defaults())
		if err != nil || weak != c.weak || desc != c.desc {
			t.Errorf("%s: weak %v, %q, %v", c.desc, weak, desc, err)
		}
	}
	for _, bad := range []string{"", "not pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01}}))} {
		if _, _, err := weakKey(bad, Defaults()); err == nil {
			t.Errorf("weakKey(%q) accepted", strings.TrimSpace(bad))
		}
	}
}
