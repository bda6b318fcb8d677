package region

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// The bootstrap document is a JWS (RFC 7515) in compact serialization:
// header, payload and signature, base64url without padding, joined by
// dots. The header carries the signer's certificate chain (x5c), so a
// device verifies it with crypto/x509 and the root it already trusts, and
// nothing else.
const (
	// BootstrapType is the JWS typ header.
	BootstrapType = "muster-bootstrap+jws"
	// DefaultBootstrapTTL is how long a document is valid.
	DefaultBootstrapTTL = 10 * time.Minute
	// bootstrapSkew is the clock difference a verifier tolerates.
	bootstrapSkew = time.Minute
)

// Document is the payload of the bootstrap document.
type Document struct {
	// Issuer is "muster"; Node is the region of the node that signed.
	Issuer   string `json:"iss"`
	Node     string `json:"node,omitempty"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	// Regions are the enabled regions.
	Regions []Entry `json:"regions"`
}

// Entry is one region in a bootstrap document.
type Entry struct {
	Name         string    `json:"name"`
	ProbeURL     string    `json:"probeUrl"`
	ProvisionURL string    `json:"provisionUrl"`
	MQTTURL      string    `json:"mqttUrl"`
	Location     *Location `json:"location,omitempty"`
}

type jwsHeader struct {
	Alg string   `json:"alg"`
	Typ string   `json:"typ"`
	X5C []string `json:"x5c"`
}

var b64 = base64.RawURLEncoding

// SignBootstrap signs doc with key, whose certificate is chain[0]; chain
// continues up to (not necessarily including) the root. ECDSA P-256 signs
// ES256, P-384 ES384, RSA RS256.
func SignBootstrap(doc *Document, key crypto.Signer, chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("region: a bootstrap signature needs the signer's certificate")
	}
	alg, hash, err := jwsAlg(key.Public())
	if err != nil {
		return "", err
	}
	h := jwsHeader{Alg: alg, Typ: BootstrapType}
	for _, c := range chain {
		h.X5C = append(h.X5C, base64.StdEncoding.EncodeToString(c.Raw))
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	pj, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(hj) + "." + b64.EncodeToString(pj)
	digest := digestOf(hash, []byte(input))
	sig, err := key.Sign(rand.Reader, digest, hash)
	if err != nil {
		return "", fmt.Errorf("region: sign bootstrap document: %w", err)
	}
	if pub, ok := key.Public().(*ecdsa.PublicKey); ok {
		// JWS wants r||s, each the curve's size; crypto.Signer gives ASN.1.
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return "", fmt.Errorf("region: ECDSA signature: %w", err)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw := make([]byte, 2*size)
		rs.R.FillBytes(raw[:size])
		rs.S.FillBytes(raw[size:])
		sig = raw
	}
	return input + "." + b64.EncodeToString(sig), nil
}

func jwsAlg(pub crypto.PublicKey) (string, crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", crypto.SHA256, nil
		case elliptic.P384():
			return "ES384", crypto.SHA384, nil
		}
	case *rsa.PublicKey:
		return "RS256", crypto.SHA256, nil
	}
	return "", 0, fmt.Errorf("region: cannot sign a bootstrap document with a %T key", pub)
}

func digestOf(h crypto.Hash, data []byte) []byte {
	if h == crypto.SHA384 {
		d := sha512.Sum384(data)
		return d[:]
	}
	d := sha256.Sum256(data)
	return d[:]
}

// VerifyBootstrap checks a bootstrap document: its chain leads to one of
// roots and its leaf is a TLS server certificate (one of Muster's
// listeners), the signature is the leaf's by the algorithm its key calls
// for, and it is valid at now (a minute of clock skew either way). It
// returns the document.
func VerifyBootstrap(jws string, roots *x509.CertPool, now time.Time) (*Document, error) {
	parts := strings.Split(strings.TrimSpace(jws), ".")
	if len(parts) != 3 {
		return nil, errors.New("bootstrap document: not a compact JWS")
	}
	hj, err1 := b64.DecodeString(parts[0])
	pj, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("bootstrap document: %w", err)
	}
	var h jwsHeader
	if err := json.Unmarshal(hj, &h); err != nil {
		return nil, fmt.Errorf("bootstrap document header: %w", err)
	}
	if h.Typ != BootstrapType || len(h.X5C) == 0 {
		return nil, errors.New("bootstrap document: not a Muster bootstrap document")
	}
	var chain []*x509.Certificate
	for _, c := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return nil, fmt.Errorf("bootstrap document x5c: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("bootstrap document x5c: %w", err)
		}
		chain = append(chain, cert)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("bootstrap document: signer is not trusted: %w", err)
	}
	alg, hash, err := jwsAlg(chain[0].PublicKey)
	if err != nil || alg != h.Alg {
		return nil, fmt.Errorf("bootstrap document: algorithm %q does not fit the signer's key", h.Alg)
	}
	digest := digestOf(hash, []byte(parts[0]+"."+parts[1]))
	switch k := chain[0].PublicKey.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size || !ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])) {
			return nil, errors.New("bootstrap document: bad signature")
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, hash, digest, sig) != nil {
			return nil, errors.New("bootstrap document: bad signature")
		}
	}
	var doc Document
	if err := json.Unmarshal(pj, &doc); err != nil {
		return nil, fmt.Errorf("bootstrap document payload: %w", err)
	}
	switch {
	case doc.Issuer != "muster":
		return nil, fmt.Errorf("bootstrap document: issuer %q is not muster", doc.Issuer)
	case now.Add(bootstrapSkew).Unix() < doc.IssuedAt:
		return nil, errors.New("bootstrap document: issued in the future; check the device clock")
	case now.Add(-bootstrapSkew).Unix() > doc.Expires:
		return nil, errors.New("bootstrap document: expired; fetch a new one")
	}
	return &doc, nil
}
