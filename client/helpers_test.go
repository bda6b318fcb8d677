package client

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

func x509Pool(t *testing.T) *x509.CertPool {
	t.Helper()
	return x509.NewCertPool()
}

func writeCertPEM(t *testing.T, file string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
