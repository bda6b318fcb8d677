package provision

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/internal/pki"
)

// checkCSR applies pki.CheckCSR with the template's key rules, then the
// rules only provisioning knows: the key is one the template allows, and
// it is not the birth key (a device must prove it made a new key).
// Whatever subject and SAN the CSR asks for are ignored: the certificate's
// come from the device id.
func (p *Pipeline) checkCSR(ctx context.Context, a *attempt) error {
	csr, err := pki.CheckCSR(a.req.CSR, csrRules(a.tmpl.Certificate.KeyTypes))
	if err != nil {
		return refuse("%v", err)
	}
	kt := keyTypeOf(csr.PublicKey)
	if !slices.Contains(a.tmpl.Certificate.KeyTypes, kt) {
		return refuse("CSR key type %s is not allowed by template %s (allowed: %s)", kt, a.tmpl.Name, strings.Join(a.tmpl.Certificate.KeyTypes, ", "))
	}
	fp, err := pki.PublicKeyFingerprint(csr.PublicKey)
	if err != nil {
		return refuse("CSR key: %v", err)
	}
	birth := a.birthFP
	if birth == "" && a.dev != nil {
		// Renewals and claims carry no birth certificate; the device's
		// recorded one still must not become an operational key.
		certs, err := p.st.BirthCertificates(ctx, []string{a.dev.ID})
		if err != nil {
			return fmt.Errorf("provision: birth certificate of %s: %w", a.dev.ID, err)
		}
		birth = certs[a.dev.ID].Fingerprint
	}
	if birth != "" && fp == birth {
		return refuse("CSR key is the birth certificate's key; the device must generate a new key")
	}
	a.csr, a.keyType = csr, kt
	return nil
}

// csrRules turns a template's key types into pki's CSR rules; checkCSR
// then narrows to the exact types.
func csrRules(types []string) pki.CSRRules {
	rules := pki.CSRRules{RejectRSA: true, AllowEd25519: slices.Contains(types, "ed25519")}
	for _, t := range types {
		if bits, ok := strings.CutPrefix(t, "rsa-"); ok {
			n, _ := strconv.Atoi(bits)
			if rules.RejectRSA || n < rules.MinRSABits {
				rules.MinRSABits = n
			}
			rules.RejectRSA = false
		}
	}
	return rules
}

// keyTypeOf names a public key the way templates do.
func keyTypeOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256"
		case elliptic.P384():
			return "ecdsa-p384"
		}
		return "ecdsa-" + k.Curve.Params().Name
	case *rsa.PublicKey:
		return "rsa-" + strconv.Itoa(k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", pub)
}
