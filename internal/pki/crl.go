package pki

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"
)

// RevokedCert is one revoked certificate in a CRL.
type RevokedCert struct {
	Serial    *big.Int
	RevokedAt time.Time
	// Reason is an RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise,
	// 4 superseded, 5 cessationOfOperation, ...). 0 omits the extension, as
	// RFC 5280 recommends.
	Reason int
}

// Valid RFC 5280 reason codes for a full CRL: 7 is unassigned and 8
// (removeFromCRL) belongs only in delta CRLs.
func validReason(r int) bool { return r >= 0 && r <= 10 && r != 7 && r != 8 }

// CreateCRL returns a DER CRL signed by c listing entries. number is the
// CRL number and must grow with every CRL the CA publishes; the caller
// keeps it, since it must survive restarts and be shared between nodes.
func (c *CA) CreateCRL(entries []RevokedCert, number int64, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if number < 0 {
		return nil, fmt.Errorf("pki: CRL number %d must not be negative", number)
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("pki: CRL nextUpdate %s must be after thisUpdate %s", nextUpdate, thisUpdate)
	}
	list := make([]x509.RevocationListEntry, 0, len(entries))
	for _, e := range entries {
		if e.Serial == nil || e.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("pki: CRL entry has invalid serial %v", e.Serial)
		}
		if !validReason(e.Reason) {
			return nil, fmt.Errorf("pki: CRL entry %x has invalid reason code %d", e.Serial, e.Reason)
		}
		if e.RevokedAt.IsZero() {
			return nil, fmt.Errorf("pki: CRL entry %x has no revocation time", e.Serial)
		}
		list = append(list, x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.RevokedAt, ReasonCode: e.Reason})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: list,
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
	}, c.cert, c.signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL for %q: %w", c.cert.Subject.CommonName, err)
	}
	return der, nil
}
