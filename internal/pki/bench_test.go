package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// BenchmarkCreateCertificateRaw is the floor: one bare
// x509.CreateCertificate with an in-memory ECDSA P-256 CA key and a fixed
// template, no checks.
func BenchmarkCreateCertificateRaw(b *testing.B) {
	caKey := newP256(b)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now, NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafPub := newP256(b).Public()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "device"},
		NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, leafPub, caKey); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueFromCSR is the provisioning path's PKI cost: CheckCSR
// (parse, key rules, signature check) then Issue (profile, key id,
// signing, parsing the result) from a file-backed operational CA.
func BenchmarkIssueFromCSR(b *testing.B) {
	h := newHierarchy(b)
	csrDER := makeCSR(b, newP256(b))
	profile := OperationalProfile{DeviceID: "0193f5e2-7c1a-7b3e-9c1d-2f4a5b6c7d8e"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		csr, err := CheckCSR(csrDER, CSRRules{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.op.Issue(ctx, profile, csr.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}
