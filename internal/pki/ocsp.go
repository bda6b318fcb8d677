package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Status is the revocation status of a certificate as OCSP reports it.
type Status int

// Certificate statuses. The zero value is StatusUnknown so that a
// forgotten assignment never reads as "good".
const (
	StatusUnknown Status = iota
	StatusGood
	StatusRevoked
)

func (s Status) String() string {
	switch s {
	case StatusGood:
		return "good"
	case StatusRevoked:
		return "revoked"
	default:
		return "unknown"
	}
}

// CertStatus is what a StatusSource knows about one certificate.
type CertStatus struct {
	Status Status
	// RevokedAt and Reason (an RFC 5280 CRLReason code) are set when
	// Status is StatusRevoked.
	RevokedAt time.Time
	Reason    int
}

// StatusSource looks up certificate status, typically in the store.
type StatusSource interface {
	// CertStatus reports the status of the certificate with the given
	// serial issued by issuer. It returns StatusUnknown for serials the
	// issuer never issued.
	CertStatus(ctx context.Context, issuer *x509.Certificate, serial *big.Int) (CertStatus, error)
}

const (
	// ocspResponseValidity is how long a response may be cached (its
	// nextUpdate). Revocations reach clients that cache within this time.
	ocspResponseValidity = time.Hour
	// maxOCSPRequestSize bounds request bodies; a single-certificate
	// request is about 100 bytes.
	maxOCSPRequestSize = 4 << 10
	ocspRequestType    = "application/ocsp-request"
	ocspResponseType   = "application/ocsp-response"
)

// OCSPResponder answers RFC 6960 OCSP requests over HTTP (RFC 5019
// profile: GET with the base64 request in the path, or POST). Responses
// are signed by the issuing CA itself, so clients need no delegated
// responder certificate. Request nonces are not echoed, as RFC 5019
// allows.
//
// Mount it on a path prefix with http.StripPrefix. Note that
// http.ServeMux redirects paths containing "//", which base64 can produce;
// clients that fail on that fall back to POST.
type OCSPResponder struct {
	src    StatusSource
	cas    func() []*CA
	logger *slog.Logger
}

// NewOCSPResponder returns a responder that answers for the CAs returned
// by cas (called per request, so rotated CAs are picked up) using src for
// statuses. A nil logger means slog.Default().
func NewOCSPResponder(src StatusSource, cas func() []*CA, logger *slog.Logger) *OCSPResponder {
	if logger == nil {
		logger = slog.Default()
	}
	return &OCSPResponder{src: src, cas: cas, logger: logger}
}

// ServeHTTP implements http.Handler.
func (o *OCSPResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var der []byte
	switch r.Method {
	case http.MethodGet:
		raw := strings.TrimPrefix(r.URL.Path, "/")
		if len(raw) > base64.StdEncoding.EncodedLen(maxOCSPRequestSize) {
			http.Error(w, "OCSP request too large", http.StatusRequestURITooLong)
			return
		}
		var err error
		if der, err = base64.StdEncoding.DecodeString(raw); err != nil {
			o.logger.DebugContext(r.Context(), "ocsp: bad base64 in GET request", "err", err)
			o.write(w, r, ocsp.MalformedRequestErrorResponse, nil)
			return
		}
	case http.MethodPost:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != ocspRequestType {
			http.Error(w, "Content-Type must be "+ocspRequestType, http.StatusUnsupportedMediaType)
			return
		}
		var err error
		if der, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxOCSPRequestSize)); err != nil {
			http.Error(w, "OCSP request too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	body, tmpl := o.respond(r.Context(), der)
	o.write(w, r, body, tmpl)
}

// write sends an OCSP response. Signed responses to GET requests carry the
// RFC 5019 caching headers so that HTTP caches can offload the responder.
func (o *OCSPResponder) write(w http.ResponseWriter, r *http.Request, body []byte, signed *ocsp.Response) {
	h := w.Header()
	h.Set("Content-Type", ocspResponseType)
	if signed != nil && r.Method == http.MethodGet {
		maxAge := int(signed.NextUpdate.Sub(signed.ThisUpdate) / time.Second)
		h.Set("Cache-Control", "public, no-transform, must-revalidate, max-age="+strconv.Itoa(maxAge))
		h.Set("Last-Modified", signed.ThisUpdate.UTC().Format(http.TimeFormat))
		h.Set("Expires", signed.NextUpdate.UTC().Format(http.TimeFormat))
	}
	// OCSP errors are in-band: the HTTP status is 200 either way.
	_, _ = w.Write(body)
}

// respond produces the DER OCSP response for a DER request, and the signed
// response's fields when it signed one.
func (o *OCSPResponder) respond(ctx context.Context, der []byte) ([]byte, *ocsp.Response) {
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		o.logger.DebugContext(ctx, "ocsp: malformed request", "err", err)
		return ocsp.MalformedRequestErrorResponse, nil
	}
	ca, err := o.issuerOf(req)
	if err != nil {
		o.logger.DebugContext(ctx, "ocsp: malformed request", "err", err)
		return ocsp.MalformedRequestErrorResponse, nil
	}
	if ca == nil {
		// RFC 5019 section 2.2.3: answer unauthorized for CAs we do not
		// serve, rather than claiming anything about their certificates.
		o.logger.InfoContext(ctx, "ocsp: request for unknown issuer", "serial", fmt.Sprintf("%x", req.SerialNumber))
		return ocsp.UnauthorizedErrorResponse, nil
	}
	st, err := o.src.CertStatus(ctx, ca.cert, req.SerialNumber)
	if err != nil {
		o.logger.ErrorContext(ctx, "ocsp: status lookup failed", "issuer", ca.cert.Subject.CommonName, "serial", fmt.Sprintf("%x", req.SerialNumber), "err", err)
		return ocsp.TryLaterErrorResponse, nil
	}
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(ocspResponseValidity),
		IssuerHash:   req.HashAlgorithm,
		Status:       ocsp.Unknown,
	}
	switch st.Status {
	case StatusGood:
		tmpl.Status = ocsp.Good
	case StatusRevoked:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, st.RevokedAt, st.Reason
	}
	resp, err := ocsp.CreateResponse(ca.cert, ca.cert, tmpl, ca.signer)
	if err != nil {
		o.logger.ErrorContext(ctx, "ocsp: sign response failed", "issuer", ca.cert.Subject.CommonName, "err", err)
		return ocsp.InternalErrorErrorResponse, nil
	}
	return resp, &tmpl
}

// issuerOf finds the CA whose name and key hashes the request carries. It
// returns nil, nil if no CA matches.
func (o *OCSPResponder) issuerOf(req *ocsp.Request) (*CA, error) {
	if !req.HashAlgorithm.Available() {
		return nil, errors.New("unsupported CertID hash algorithm")
	}
	for _, ca := range o.cas() {
		bits, err := publicKeyBits(ca.cert.RawSubjectPublicKeyInfo)
		if err != nil {
			continue
		}
		h := req.HashAlgorithm.New()
		h.Write(ca.cert.RawSubject)
		nameHash := h.Sum(nil)
		h.Reset()
		h.Write(bits)
		keyHash := h.Sum(nil)
		if bytes.Equal(nameHash, req.IssuerNameHash) && bytes.Equal(keyHash, req.IssuerKeyHash) {
			return ca, nil
		}
	}
	return nil, nil
}
