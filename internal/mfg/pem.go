package mfg

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// CertificatePEM encodes a DER certificate as PEM, as Result.CertificatePEM
// carries it.
func CertificatePEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// KeyPEM encodes a private key as unencrypted PKCS#8 PEM, the form openssl
// and TLS stacks read, as Result.KeyPEM carries a minted key: handed out
// once, never stored.
func KeyPEM(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("mfg: encode a private key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}
