package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"slices"

	"github.com/muster-iot/muster/internal/pki"
)

// Chain is the certificates a relying party needs for one purpose (and
// factory): the trusted CAs of that purpose, newest first, then the root
// they chain to. An external factory's chain is its maker's CA alone.
type Chain struct {
	Purpose pki.Purpose `json:"purpose"`
	Factory string      `json:"factory,omitempty"`
	// PEM holds the certificates, concatenated.
	PEM string `json:"pem"`
}

// Chains returns the chain of every purpose and factory with a trusted CA,
// the root's first: what `muster ca export` writes, so that
// `openssl verify -CAfile root.pem -untrusted <chain> <certificate>` checks
// a certificate Muster issued. During a rotation's overlap a chain holds
// both generations, so certificates of either verify.
func (r *Registry) Chains(ctx context.Context) ([]Chain, error) {
	v, err := r.current(ctx, false)
	if err != nil {
		return nil, err
	}
	type key struct {
		p       pki.Purpose
		factory string
	}
	var order []key
	certs := map[key][]*x509.Certificate{}
	trusted := slices.Clone(v.trusted)
	slices.Reverse(trusted) // newest first
	for _, a := range trusted {
		k := key{pki.Purpose(a.Purpose), a.Factory}
		if _, seen := certs[k]; !seen {
			order = append(order, k)
		}
		certs[k] = append(certs[k], a.Cert)
	}
	roots := certs[key{pki.PurposeRoot, ""}]
	slices.SortStableFunc(order, func(a, b key) int { return rank(a.p) - rank(b.p) })
	out := make([]Chain, 0, len(order))
	for _, k := range order {
		chain := certs[k]
		if k.p != pki.PurposeRoot && k.p != PurposeExternal {
			chain = append(slices.Clip(chain), roots...)
		}
		out = append(out, Chain{Purpose: k.p, Factory: k.factory, PEM: string(certPEM(chain...))})
	}
	return out, nil
}

// rank orders chains for people: the root, Muster's own CAs, then factories.
func rank(p pki.Purpose) int {
	return slices.Index([]pki.Purpose{pki.PurposeRoot, pki.PurposeServer, pki.PurposeOperational, PurposeRegional, pki.PurposeManufacturing, PurposeExternal}, p)
}

// certPEM encodes certificates as concatenated PEM blocks.
func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) // writing to a Buffer cannot fail
	}
	return b.Bytes()
}
