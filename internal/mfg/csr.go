package mfg

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
)

// DecodeCSR returns the DER of the one certificate request in pemText, a
// "CERTIFICATE REQUEST" (or the older "NEW CERTIFICATE REQUEST") PEM block.
// Text before the block, such as openssl's -text dump, is ignored; anything
// else is refused. It checks the armour only: the request's signature and
// key are checked by the PKI when it issues the certificate.
func DecodeCSR(pemText string) ([]byte, error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block found: the CSR must start with -----BEGIN CERTIFICATE REQUEST-----")
	}
	switch block.Type {
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("found a %s PEM block where a CSR was expected: never send a private key; send a certificate request made with it", block.Type)
	default:
		return nil, fmt.Errorf("found a %s PEM block, want CERTIFICATE REQUEST", block.Type)
	}
	if len(block.Bytes) == 0 {
		return nil, errors.New("the CERTIFICATE REQUEST PEM block is empty")
	}
	if extra, _ := pem.Decode(rest); extra != nil {
		return nil, fmt.Errorf("found more than one PEM block (the second is %s): send exactly one certificate request per row", extra.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("unexpected text after the CERTIFICATE REQUEST PEM block")
	}
	return block.Bytes, nil
}
