package revocation

import (
	"context"
	"crypto/x509"

	"github.com/muster-iot/muster/internal/pki"
)

// Issuer is one CA as revocation sees it: the id the certificates table
// files its certificates under, its certificate, and, when Muster holds its
// key, the CA that signs its CRLs and OCSP responses.
type Issuer struct {
	ID          string
	Certificate *x509.Certificate
	// CA is nil for CAs Muster holds no key for (external manufacturer
	// CAs): their certificates can still be revoked and are refused by the
	// device listeners, but no CRL or OCSP answer is signed for them.
	CA *pki.CA
}

// IssuerSource lists every CA Muster knows, including retiring ones whose
// certificates are still in use. The CA registry implements it. It is
// called on every refresh of the revocation set (four times a second by
// default), so implementations should answer from memory.
type IssuerSource interface {
	Issuers(ctx context.Context) ([]Issuer, error)
}

// issuerIndex finds issuers by id and by certificate.
type issuerIndex struct {
	byID map[string]Issuer
	// byCert maps the DER of an issuer's certificate to its id. The DER
	// identifies a CA exactly: rotated generations share a name but not a
	// key, and so never a DER.
	byCert map[string]string
	// signing are the CAs Muster can sign CRLs and OCSP answers with.
	signing []*pki.CA
}

func newIssuerIndex(issuers []Issuer) *issuerIndex {
	idx := &issuerIndex{byID: make(map[string]Issuer, len(issuers)), byCert: make(map[string]string, len(issuers))}
	for _, iss := range issuers {
		if iss.ID == "" || iss.Certificate == nil {
			continue
		}
		idx.byID[iss.ID] = iss
		idx.byCert[string(iss.Certificate.Raw)] = iss.ID
		if iss.CA != nil {
			idx.signing = append(idx.signing, iss.CA)
		}
	}
	return idx
}

// idOf returns the id of the CA whose certificate is cert.
func (idx *issuerIndex) idOf(cert *x509.Certificate) (string, bool) {
	if idx == nil || cert == nil {
		return "", false
	}
	id, ok := idx.byCert[string(cert.Raw)]
	return id, ok
}
