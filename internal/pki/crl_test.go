package pki

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCreateCRL(t *testing.T) {
	h := newHierarchy(t)
	now := time.Now().UTC().Truncate(time.Second)
	compromised, _ := issue(t, h.op, OperationalProfile{DeviceID: "stolen"})
	retired, _ := issue(t, h.op, OperationalProfile{DeviceID: "retired"})
	entries := []RevokedCert{
		{Serial: compromised.SerialNumber, RevokedAt: now.Add(-time.Hour), Reason: 1},
		{Serial: retired.SerialNumber, RevokedAt: now.Add(-2 * time.Hour), Reason: 0},
	}
	der, err := h.op.CreateCRL(entries, 7, now, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(h.op.Certificate()); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if err := crl.CheckSignatureFrom(h.mfg.Certificate()); err == nil {
		t.Error("CRL verifies against another CA")
	}
	if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(24*time.Hour)) {
		t.Errorf("number %v thisUpdate %s nextUpdate %s", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if string(crl.AuthorityKeyId) != string(h.op.Certificate().SubjectKeyId) {
		t.Error("CRL authority key id is not the CA's")
	}
	if len(crl.RevokedCertificateEntries) != 2 {
		t.Fatalf("%d entries", len(crl.RevokedCertificateEntries))
	}
	for i, e := range crl.RevokedCertificateEntries {
		want := entries[i]
		if e.SerialNumber.Cmp(want.Serial) != 0 || !e.RevocationTime.Equal(want.RevokedAt) || e.ReasonCode != want.Reason {
			t.Errorf("entry %d: %x %s %d, want %x %s %d", i, e.SerialNumber, e.RevocationTime, e.ReasonCode, want.Serial, want.RevokedAt, want.Reason)
		}
	}

	dir := t.TempDir()
	out := openssl(t, false, "crl", "-inform", "DER", "-in", writeFile(t, dir, "op.crl", der), "-noout", "-text")
	for _, want := range []string{
		"X509v3 CRL Number: \n                7",
		fmt.Sprintf("%X", compromised.SerialNumber),
		fmt.Sprintf("%X", retired.SerialNumber),
		"Key Compromise",
		"Issuer: " + "OU = Muster operational CA, CN = Muster operational CA",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}
	// openssl also verifies the CRL signature against the issuing CA.
	verified := openssl(t, false, "crl", "-inform", "DER", "-in", writeFile(t, dir, "op2.crl", der), "-noout",
		"-CAfile", writeFile(t, dir, "op.pem", h.op.CertificatePEM()))
	if !strings.Contains(verified, "verify OK") {
		t.Errorf("openssl did not verify the CRL: %s", verified)
	}

	empty, err := h.op.CreateCRL(nil, 8, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if crl, err := x509.ParseRevocationList(empty); err != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("empty CRL: %v", err)
	}
}

func TestCreateCRLRefusals(t *testing.T) {
	h := newHierarchy(t)
	now := time.Now()
	ok := RevokedCert{Serial: big.NewInt(1), RevokedAt: now}
	tests := []struct {
		name       string
		entries    []RevokedCert
		number     int64
		this, next time.Time
	}{
		{"next before this", nil, 1, now, now.Add(-time.Hour)},
		{"next equals this", nil, 1, now, now},
		{"negative number", nil, -1, now, now.Add(time.Hour)},
		{"nil serial", []RevokedCert{{RevokedAt: now}}, 1, now, now.Add(time.Hour)},
		{"zero serial", []RevokedCert{{Serial: big.NewInt(0), RevokedAt: now}}, 1, now, now.Add(time.Hour)},
		{"reason 7", []RevokedCert{ok, {Serial: big.NewInt(2), RevokedAt: now, Reason: 7}}, 1, now, now.Add(time.Hour)},
		{"removeFromCRL", []RevokedCert{{Serial: big.NewInt(2), RevokedAt: now, Reason: 8}}, 1, now, now.Add(time.Hour)},
		{"reason 11", []RevokedCert{{Serial: big.NewInt(2), RevokedAt: now, Reason: 11}}, 1, now, now.Add(time.Hour)},
		{"no revocation time", []RevokedCert{{Serial: big.NewInt(2)}}, 1, now, now.Add(time.Hour)},
	}
	for _, tt := range tests {
		if _, err := h.op.CreateCRL(tt.entries, tt.number, tt.this, tt.next); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}
