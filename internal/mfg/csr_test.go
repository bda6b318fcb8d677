package mfg

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestDecodeCSR(t *testing.T) {
	csr := newCSRPEM(t, "SN-1")
	block, _ := pem.Decode([]byte(csr))
	oldStyle := string(pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes}))
	pemOf := func(typ string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: []byte{1, 2, 3}}))
	}

	for name, in := range map[string]string{
		"plain":            csr,
		"old type":         oldStyle,
		"text before":      "Certificate Request:\n    Data: ...\n" + csr,
		"blank around":     "\n\n" + csr + "\n\n",
		"no final newline": strings.TrimSuffix(csr, "\n"),
	} {
		der, err := DecodeCSR(in)
		if err != nil || !bytes.Equal(der, block.Bytes) {
			t.Errorf("%s: DecodeCSR = %d bytes, %v", name, len(der), err)
			continue
		}
		if _, err := x509.ParseCertificateRequest(der); err != nil {
			t.Errorf("%s: DER does not parse: %v", name, err)
		}
	}

	for name, c := range map[string]struct{ in, want string }{
		"empty":           {"", "no PEM block"},
		"base64 only":     {"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", "no PEM block"},
		"broken armour":   {"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n", "no PEM block"},
		"certificate":     {pemOf("CERTIFICATE"), "found a CERTIFICATE PEM block, want CERTIFICATE REQUEST"},
		"private key":     {pemOf("PRIVATE KEY"), "never send a private key"},
		"ec private key":  {pemOf("EC PRIVATE KEY"), "never send a private key"},
		"two CSRs":        {csr + csr, "more than one PEM block"},
		"CSR and key":     {csr + pemOf("PRIVATE KEY"), "the second is PRIVATE KEY"},
		"text after":      {csr + "trailing words", "unexpected text after"},
		"empty CSR block": {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST"})), "is empty"},
	} {
		if _, err := DecodeCSR(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want mention of %q", name, err, c.want)
		}
	}
}
