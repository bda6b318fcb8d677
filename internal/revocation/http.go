package revocation

import (
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/internal/pki"
)

// The public PKI paths (docs/revocation.md). They are served over plain
// HTTP on --pki-addr, as RFC 5280 and RFC 6960 clients expect (CRLs and OCSP
// answers are signed, so TLS adds nothing), and on the device listener.
const (
	// CRLPath + "<ca id>.crl" is a CA's current CRL, DER-encoded.
	CRLPath = "/pki/crl/"
	// OCSPPath is the OCSP responder: POST the DER request to it, or GET
	// OCSPPath + "/" + the base64 request.
	OCSPPath = "/pki/ocsp"
	// CAPath + "<ca id>.pem" is a CA's certificate, PEM-encoded.
	CAPath = "/pki/ca/"
)

const (
	crlContentType = "application/pkix-crl"
	pemContentType = "application/x-pem-file"
)

// PKIHandler serves CRLs, OCSP and CA certificates for svc under /pki/.
// Every path answers anyone: what it serves is public and signed.
func PKIHandler(svc *Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CRLPath+"{file}", svc.serveCRL)
	mux.HandleFunc("GET "+CAPath+"{file}", svc.serveCACert)
	ocsp := http.StripPrefix(OCSPPath, pki.NewOCSPResponder(svc, svc.signingCAs, svc.log))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// OCSP GET requests carry base64, which may contain "//": the mux
		// would redirect those to a cleaned path, so they bypass it.
		if r.URL.Path == OCSPPath || strings.HasPrefix(r.URL.Path, OCSPPath+"/") {
			ocsp.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveCRL answers GET /pki/crl/{caID}.crl.
func (s *Service) serveCRL(w http.ResponseWriter, r *http.Request) {
	caID, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
	if !ok || caID == "" {
		http.Error(w, "CRLs are at "+CRLPath+"<ca id>.crl", http.StatusNotFound)
		return
	}
	crl, err := s.CRL(r.Context(), caID)
	switch {
	case errors.Is(err, ErrNoCRL):
		http.Error(w, "no CRL is published for CA "+strconv.Quote(caID), http.StatusNotFound)
		return
	case err != nil:
		if !errors.Is(err, ErrUnavailable) {
			s.log.ErrorContext(r.Context(), "revocation: serving a CRL failed", "ca", caID, "err", err)
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the CRL is not available right now; retry", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", crlContentType)
	h.Set("Last-Modified", crl.ThisUpdate.Format(http.TimeFormat))
	// Caches must ask again: a new CRL can appear at any revocation, long
	// before this one's nextUpdate.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(crl.DER)))
	_, _ = w.Write(crl.DER)
}

// serveCACert answers GET /pki/ca/{caID}.pem.
func (s *Service) serveCACert(w http.ResponseWriter, r *http.Request) {
	caID, ok := strings.CutSuffix(r.PathValue("file"), ".pem")
	idx := s.issuerIndex()
	if idx == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the CA list has not loaded yet; retry", http.StatusServiceUnavailable)
		return
	}
	iss := idx.byID[caID]
	if !ok || iss.Certificate == nil {
		http.Error(w, "no CA certificate at this path; CA certificates are at "+CAPath+"<ca id>.pem", http.StatusNotFound)
		return
	}
	body := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Certificate.Raw})
	w.Header().Set("Content-Type", pemContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
