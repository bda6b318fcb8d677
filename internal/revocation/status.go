package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// CertStatus implements pki.StatusSource for the OCSP responder: good for
// a certificate Muster issued and has not revoked, revoked with its time
// and reason, unknown for a serial Muster never issued. It reads the store,
// not the node's revocation set, so an answer is never older than the
// revocation it reports.
func (s *Service) CertStatus(ctx context.Context, issuer *x509.Certificate, serial *big.Int) (pki.CertStatus, error) {
	id, ok := s.issuerIndex().idOf(issuer)
	if !ok || serial == nil || serial.Sign() <= 0 {
		return pki.CertStatus{Status: pki.StatusUnknown}, nil
	}
	st, err := s.store.CertificateStatus(ctx, id, serial.Text(16))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return pki.CertStatus{Status: pki.StatusUnknown}, nil
	case err != nil:
		return pki.CertStatus{}, err
	case st.RevokedAt != nil:
		var reason int
		if st.RevokeReason != nil {
			reason = *st.RevokeReason
		}
		return pki.CertStatus{Status: pki.StatusRevoked, RevokedAt: *st.RevokedAt, Reason: reason}, nil
	}
	return pki.CertStatus{Status: pki.StatusGood}, nil
}

// signingCAs are the CAs the OCSP responder answers for.
func (s *Service) signingCAs() []*pki.CA {
	if idx := s.issuerIndex(); idx != nil {
		return idx.signing
	}
	return nil
}

// The service is what device listeners and the OCSP responder consult.
var (
	_ pki.RevocationChecker = (*Service)(nil)
	_ pki.StatusSource      = (*Service)(nil)
)

// DeviceOf returns the id of the device the certificate with serial, issued
// by issuer, was issued to. A certificate Muster has no record of is an
// error wrapping store.ErrNotFound.
func (s *Service) DeviceOf(ctx context.Context, issuer *x509.Certificate, serial *big.Int) (string, error) {
	id, ok := s.issuerIndex().idOf(issuer)
	if !ok || serial == nil {
		return "", fmt.Errorf("revocation: certificate of an unknown CA: %w", store.ErrNotFound)
	}
	st, err := s.store.CertificateStatus(ctx, id, serial.Text(16))
	if err != nil {
		return "", err
	}
	return st.DeviceID, nil
}
