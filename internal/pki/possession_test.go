package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewPossessionChallenge(t *testing.T) {
	a, b := NewPossessionChallenge(), NewPossessionChallenge()
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(a) || a == b {
		t.Errorf("challenges %q, %q", a, b)
	}
}

// makerCA creates a manufacturer CA with openssl, as a maker would.
func makerCA(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	openssl(t, false, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", keyFile, "-out", certFile, "-days", "30", "-subj", "/O=Acme Chips/CN=Acme Maker CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return certFile, keyFile
}

// verificationCert has the CA sign a certificate whose CN is the nonce.
func verificationCert(t *testing.T, dir, caCert, caKey, cn string) []byte {
	t.Helper()
	csr, out := filepath.Join(dir, "verif.csr"), filepath.Join(dir, "verif.pem")
	openssl(t, false, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "verif.key"), "-subj", "/CN="+cn, "-out", csr)
	openssl(t, false, "x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-days", "1", "-out", out)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestVerifyPossessionWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	caFile, keyFile := makerCA(t, dir, "maker")
	caPEM, _ := os.ReadFile(caFile)
	ca, err := parseCertificatePEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateExternalCA(ca); err != nil {
		t.Fatalf("openssl-made maker CA refused: %v", err)
	}
	nonce := NewPossessionChallenge()

	if err := VerifyPossession(ca, verificationCert(t, dir, caFile, keyFile, nonce), nonce); err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}

	// Someone without the key makes a CA with the same name and signs the
	// nonce with it: the names match, the signature does not.
	impostorDir := t.TempDir()
	impFile, impKey := makerCA(t, impostorDir, "impostor")
	err = VerifyPossession(ca, verificationCert(t, impostorDir, impFile, impKey, nonce), nonce)
	if !errors.Is(err, ErrPossession) || !strings.Contains(err.Error(), "not signed by the CA") {
		t.Errorf("impostor: err = %v", err)
	}

	err = VerifyPossession(ca, verificationCert(t, dir, caFile, keyFile, NewPossessionChallenge()), nonce)
	if !errors.Is(err, ErrPossession) || !strings.Contains(err.Error(), "challenge") {
		t.Errorf("stale nonce: err = %v", err)
	}
}

func TestVerifyPossessionRefusals(t *testing.T) {
	ca := newExternalCA(t, "Acme Root")
	other := newExternalCA(t, "Other Root")
	nonce := NewPossessionChallenge()
	pub := newP256(t).Public()
	verif := func(signer *CA, cn string, notBefore, notAfter time.Time) []byte {
		return certPEM(signRaw(t, signer, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter}, pub))
	}
	now := time.Now()
	leaf := externalLeaf(t, ca, "ACME-1")

	tests := []struct {
		name    string
		ca      *x509.Certificate
		pem     []byte
		nonce   string
		wantIs  error
		wantMsg string
	}{
		{"other CA", ca.Certificate(), verif(other, nonce, now.Add(-time.Hour), now.Add(time.Hour)), nonce, ErrPossession, "issuer"},
		{"wrong CN", ca.Certificate(), verif(ca, "hello", now.Add(-time.Hour), now.Add(time.Hour)), nonce, ErrPossession, "challenge"},
		{"empty nonce", ca.Certificate(), verif(ca, "", now.Add(-time.Hour), now.Add(time.Hour)), "", ErrPossession, "empty"},
		{"expired verification certificate", ca.Certificate(), verif(ca, nonce, now.Add(-2*time.Hour), now.Add(-time.Hour)), nonce, ErrPossession, "valid only"},
		{"not PEM", ca.Certificate(), []byte("nope"), nonce, ErrPossession, "PEM"},
		{"leaf as CA", leaf, verif(ca, nonce, now.Add(-time.Hour), now.Add(time.Hour)), nonce, ErrExternalCA, "not a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPossession(tt.ca, tt.pem, tt.nonce)
			if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want %v mentioning %q", err, tt.wantIs, tt.wantMsg)
			}
		})
	}
}

func TestValidateExternalCA(t *testing.T) {
	now := time.Now()
	selfSigned := func(mutate func(*x509.Certificate), key crypto.Signer) *x509.Certificate {
		t.Helper()
		tmpl := &x509.Certificate{
			SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: "Maker CA"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		mutate(tmpl)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	p256 := newP256(t)
	rsa1024 := newRSA(t, 1024)
	nop := func(*x509.Certificate) {}

	tests := []struct {
		name    string
		cert    *x509.Certificate
		wantMsg string // "" means valid
	}{
		{"valid", selfSigned(nop, p256), ""},
		{"clientAuth EKU", selfSigned(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }, p256), ""},
		{"not a CA", selfSigned(func(c *x509.Certificate) { c.IsCA = false }, p256), "not a CA"},
		{"no keyCertSign", selfSigned(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }, p256), "keyCertSign"},
		{"expired", selfSigned(func(c *x509.Certificate) { c.NotBefore, c.NotAfter = now.Add(-2*time.Hour), now.Add(-time.Hour) }, p256), "valid only"},
		{"serverAuth only", selfSigned(func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, p256), "clientAuth"},
		{"RSA-1024", selfSigned(nop, rsa1024), "too weak"},
		{"nil", nil, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateExternalCA(tt.cert)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrExternalCA) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want ErrExternalCA mentioning %q", err, tt.wantMsg)
			}
		})
	}

	t.Run("SHA-1 signature", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "sha1.pem")
		openssl(t, false, "req", "-x509", "-sha1", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(dir, "k"),
			"-out", file, "-days", "1", "-subj", "/CN=Old CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
		data, _ := os.ReadFile(file)
		cert, err := parseCertificatePEM(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateExternalCA(cert); !errors.Is(err, ErrExternalCA) || !strings.Contains(err.Error(), "weak") {
			t.Errorf("err = %v", err)
		}
	})
}
