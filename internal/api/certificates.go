package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/store"
)

// revokeRequest is the body of both revoke routes.
type revokeRequest struct {
	// Reason is an RFC 5280 reason name such as keyCompromise.
	Reason string `json:"reason"`
}

// certificate is a certificate as the API shows it: the stored record
// with the revocation reason also by name.
type certificate struct {
	store.Certificate
	RevokeReasonName string `json:"revokeReasonName,omitempty"`
}

// deviceRevocation is the answer of POST /v1/devices/{id}/certificates/revoke.
type deviceRevocation struct {
	// Revoked is how many certificates this call revoked; ones revoked
	// before are left as they were.
	Revoked int           `json:"revoked"`
	Items   []certificate `json:"items"`
}

func certificateOf(c store.Certificate) certificate {
	out := certificate{Certificate: c}
	if c.RevokeReason != nil {
		out.RevokeReasonName = revocation.ReasonName(*c.RevokeReason)
	}
	return out
}

func certificatesOf(cs []store.Certificate) []certificate {
	out := make([]certificate, len(cs))
	for i, c := range cs {
		out[i] = certificateOf(c)
	}
	return out
}

// reasonCode checks a revoke request's reason before anything is looked up.
func (in *revokeRequest) reasonCode() (int, error) {
	if in.Reason == "" {
		return 0, validationError("reason", "is required: one of %s", strings.Join(revocation.ReasonNames(), ", "))
	}
	code, err := revocation.ParseReason(in.Reason)
	if err != nil {
		return 0, validationError("reason", "%v", err)
	}
	return code, nil
}

func (s *Server) deviceCertificates(r *http.Request) (list[certificate], error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return list[certificate]{}, err
	}
	certs, err := s.store.CertificatesByDevice(r.Context(), d.ID)
	return listOf(certificatesOf(certs)), err
}

func (s *Server) revokeDeviceCertificates(r *http.Request, in *revokeRequest) (deviceRevocation, error) {
	reason, err := in.reasonCode()
	if err != nil {
		return deviceRevocation{}, err
	}
	d, err := s.loadDevice(r)
	if err != nil {
		return deviceRevocation{}, err
	}
	n, err := s.revoker.RevokeDeviceCertificates(r.Context(), d.ID, reason, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) {
		return deviceRevocation{}, notFound("device", d.ID)
	}
	if err != nil {
		return deviceRevocation{}, err
	}
	certs, err := s.store.CertificatesByDevice(r.Context(), d.ID)
	return deviceRevocation{Revoked: n, Items: certificatesOf(certs)}, err
}

func (s *Server) revokeCertificate(r *http.Request, in *revokeRequest) (certificate, error) {
	reason, err := in.reasonCode()
	if err != nil {
		return certificate{}, err
	}
	caID, serial := r.PathValue("caId"), r.PathValue("serial")
	if err := s.revoker.RevokeCertificate(r.Context(), caID, serial, reason, principal(r).Actor()); err != nil {
		return certificate{}, certificateError(err, caID, serial)
	}
	return s.loadCertificate(r)
}

func (s *Server) getCertificate(r *http.Request) (certificate, error) {
	return s.loadCertificate(r)
}

// loadCertificate reads the certificate named by {caId} and {serial}. A
// manufacturer sees only certificates of its own factory's devices; others
// answer 404, as their devices do.
func (s *Server) loadCertificate(r *http.Request) (certificate, error) {
	caID, serial := r.PathValue("caId"), r.PathValue("serial")
	c, err := s.store.CertificateStatus(r.Context(), caID, serial)
	if err != nil {
		return certificate{}, certificateError(err, caID, serial)
	}
	if p := principal(r); p.scoped() {
		d, err := s.store.GetDevice(r.Context(), c.DeviceID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !p.canSee(d)) {
			return certificate{}, certificateError(store.ErrNotFound, caID, serial)
		}
		if err != nil {
			return certificate{}, err
		}
	}
	return certificateOf(*c), nil
}

// certificateError names the certificate in a 404 and keeps a malformed
// serial a 400 on serial.
func certificateError(err error, caID, serial string) error {
	if _, ok := errors.AsType[*fleet.FieldError](err); ok {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, codeNotFound, "", "no certificate with serial %q issued by CA %q", serial, caID)
	}
	return err
}
