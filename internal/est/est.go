package est

import (
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/deviceauth"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/provision"
)

// PathPrefix is where EST lives (RFC 7030 section 3.2.2).
const PathPrefix = "/.well-known/est"

// maxBody bounds an EST request body: one base64 CSR.
const maxBody = 64 << 10

// csrAttrs is the CSR attributes answer (RFC 7030 section 4.5.2): a
// SEQUENCE holding the OID of ecdsa-with-SHA256, telling clients to make
// an ECDSA key and sign with SHA-256, the default every template accepts.
var csrAttrs = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}

// Register adds the EST routes to r, with and without a template label.
func Register(r provision.Router, p *provision.Pipeline, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{p: p, log: log}
	birth := []pki.IdentityKind{pki.IdentityBirth}
	both := []pki.IdentityKind{pki.IdentityBirth, pki.IdentityOperational}
	for _, prefix := range []string{PathPrefix, PathPrefix + "/{template}"} {
		r.Handle("GET "+prefix+"/cacerts", both, http.HandlerFunc(h.cacerts))
		r.Handle("GET "+prefix+"/csrattrs", both, http.HandlerFunc(h.csrattrs))
		r.Handle("POST "+prefix+"/simpleenroll", birth, h.enroll(false))
		r.HandleRenewal("POST "+prefix+"/simplereenroll", h.enroll(true))
	}
}

type handler struct {
	p   *provision.Pipeline
	log *slog.Logger
}

func (h *handler) cacerts(w http.ResponseWriter, r *http.Request) {
	chain, err := h.p.CAChain(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	writeBase64(w, "application/pkcs7-mime", certsOnly(der))
}

func (h *handler) csrattrs(w http.ResponseWriter, _ *http.Request) {
	writeBase64(w, "application/csrattrs", csrAttrs)
}

// enroll serves simpleenroll and simplereenroll: a base64 DER PKCS #10
// body in, the certificate as a certs-only PKCS #7 out.
func (h *handler) enroll(renew bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/pkcs10" {
			h.fail(w, &provision.BadRequestError{Message: "Content-Type must be application/pkcs10"})
			return
		}
		csr, err := readBase64(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			h.fail(w, err)
			return
		}
		id, _ := deviceauth.IdentityFrom(r.Context())
		resp, err := h.p.Provision(r.Context(), &provision.Request{
			Identity: id, Renew: renew, Template: r.PathValue("template"), CSR: csr,
		})
		if err != nil {
			h.fail(w, err)
			return
		}
		writeBase64(w, "application/pkcs7-mime; smime-type=certs-only", certsOnly([][]byte{resp.CertificateDER()}))
	})
}

// readBase64 reads a base64 body as RFC 8951 says to: line breaks and
// other whitespace anywhere, padding optional, Content-Transfer-Encoding
// ignored.
func readBase64(body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &provision.BadRequestError{Message: "request body is too large", TooLarge: true}
		}
		return nil, &provision.BadRequestError{Message: "read body: " + err.Error()}
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, string(raw))
	der, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(clean, "="))
	if err != nil || len(der) == 0 {
		return nil, &provision.BadRequestError{Message: "body is not a base64 DER PKCS#10 request"}
	}
	return der, nil
}

// writeBase64 answers with base64 DER, in 64-column lines as RFC 8951's
// examples do (clients must accept any line length).
func writeBase64(w http.ResponseWriter, contentType string, der []byte) {
	enc := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(enc) > 64 {
		b.WriteString(enc[:64])
		b.WriteString("\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Transfer-Encoding", "base64")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, b.String())
}

// fail answers an error in plain text. A refusal says only that.
func (h *handler) fail(w http.ResponseWriter, err error) {
	status, retry := provision.HTTPStatus(err)
	msg := http.StatusText(status)
	switch status {
	case http.StatusAccepted:
		msg = "waiting for approval; retry the same request after Retry-After seconds"
	case http.StatusBadRequest:
		msg = err.Error()
		if be, _ := errors.AsType[*provision.BadRequestError](err); be.TooLarge {
			status = http.StatusRequestEntityTooLarge
		}
	case http.StatusForbidden:
		msg = "enrollment refused"
	case http.StatusInternalServerError:
		h.log.Error("EST request failed", "err", err)
	}
	provision.SetRetryAfter(w.Header(), retry)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
