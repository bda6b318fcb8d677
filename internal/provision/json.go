package provision

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/deviceauth"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
)

// JSON provisioning routes on the device listener.
const (
	PathProvision = "/v1/provision"
	PathRenew     = "/v1/provision/renew"
	PathStatus    = "/v1/provision/status"
	// PathClaim is served by ClaimHandler, on a listener that does not
	// require client certificates (devices with a claim have none).
	PathClaim = "/v1/provision/claim"
)

// maxMeasuredRegions bounds the regions one request may report on.
const maxMeasuredRegions = 64

// maxJSONBody bounds a provisioning request: a CSR and a few parameters.
const maxJSONBody = 64 << 10

// Router is where front doors register device routes: the device
// listener, which admits each route only to the identity kinds it names.
type Router interface {
	Handle(pattern string, kinds []pki.IdentityKind, h http.Handler)
	// HandleRenewal registers a renewal route for operational identities,
	// which an expired operational certificate may still reach (the
	// template's renewal policy decides).
	HandleRenewal(pattern string, h http.Handler)
}

// JSONRequest is the body of the JSON provisioning routes.
type JSONRequest struct {
	// CSR is the PKCS#10 request, PEM or base64 DER.
	CSR        string         `json:"csr"`
	Template   string         `json:"template,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
	// LatenciesMs are round-trip times to regional probes in
	// milliseconds, by region: medians only. Measurements, with samples,
	// wins for a region named in both.
	LatenciesMs  map[string]float64            `json:"latenciesMs,omitempty"`
	Measurements map[string]region.Measurement `json:"measurements,omitempty"`
	// Location is where the device is, for the geo policy.
	Location *region.Location `json:"location,omitempty"`
	// Claim is an installer's claim secret (PathClaim only).
	Claim string `json:"claim,omitempty"`
}

// JSONError is the body of every JSON provisioning error.
type JSONError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RequestID and RetryAfter are set while a request waits for approval.
	RequestID  string `json:"requestId,omitempty"`
	RetryAfter int    `json:"retryAfter,omitempty"`
}

// RegisterJSON registers the JSON provisioning API on r: provisioning and
// status for birth identities, renewal for operational ones.
func RegisterJSON(r Router, p *Pipeline) {
	birth := []pki.IdentityKind{pki.IdentityBirth}
	r.Handle("POST "+PathProvision, birth, p.jsonHandler(false))
	r.HandleRenewal("POST "+PathRenew, p.jsonHandler(true))
	r.Handle("GET "+PathStatus, []pki.IdentityKind{pki.IdentityBirth, pki.IdentityOperational}, http.HandlerFunc(p.serveStatus))
}

// ClaimHandler serves POST PathClaim: provisioning with an installer's
// claim instead of a birth certificate, and hands every other request to
// next (404 when nil). Devices with a claim have no certificate, so mount
// it on a TLS listener that does not demand client certificates, in front
// of that listener's own handler (the admin API's, say).
func (p *Pipeline) ClaimHandler(next http.Handler) http.Handler {
	if next == nil {
		next = http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+PathClaim, p.jsonHandler(false))
	mux.Handle("/", next)
	return mux
}

func (p *Pipeline) jsonHandler(renew bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeJSONError(w, p.log, &BadRequestError{Message: "Content-Type must be application/json"})
			return
		}
		in, err := decodeJSONRequest(http.MaxBytesReader(w, r.Body, maxJSONBody))
		if err != nil {
			writeJSONError(w, p.log, err)
			return
		}
		id, _ := deviceauth.IdentityFrom(r.Context())
		req, err := in.request(id, renew)
		if err != nil {
			writeJSONError(w, p.log, err)
			return
		}
		resp, err := p.Provision(r.Context(), req)
		if err != nil {
			writeJSONError(w, p.log, err)
			return
		}
		WriteJSON(w, http.StatusOK, resp)
	})
}

// request turns a decoded JSON request into the pipeline's Request for the
// identity the front door verified.
func (in *JSONRequest) request(id pki.Identity, renew bool) (*Request, error) {
	csr, err := decodeCSR(in.CSR)
	if err != nil {
		return nil, err
	}
	if in.Claim != "" && id.Kind != "" {
		// A device with a certificate uses it; a claim must not stand
		// in for, or next to, another identity.
		return nil, &BadRequestError{Message: "send a claim only without a client certificate"}
	}
	req := &Request{Identity: id, Renew: renew, Template: in.Template, CSR: csr, Parameters: in.Parameters, ClaimSecret: in.Claim}
	if len(in.LatenciesMs)+len(in.Measurements) > maxMeasuredRegions {
		return nil, &BadRequestError{Message: fmt.Sprintf("measurements of at most %d regions", maxMeasuredRegions)}
	}
	for name, ms := range in.LatenciesMs {
		if req.Measurements == nil {
			req.Measurements = map[string]region.Measurement{}
		}
		req.Measurements[name] = region.Measurement{MedianMs: ms}
	}
	for name, m := range in.Measurements {
		if req.Measurements == nil {
			req.Measurements = map[string]region.Measurement{}
		}
		if len(m.SamplesMs) > region.MaxSamples {
			return nil, &BadRequestError{Message: fmt.Sprintf("measurements.%s: at most %d samples", name, region.MaxSamples)}
		}
		req.Measurements[name] = m
	}
	if in.Location != nil {
		if err := region.ValidLocation(*in.Location); err != nil {
			return nil, &BadRequestError{Message: "location: " + err.Error()}
		}
		req.Location = in.Location
	}
	return req, nil
}

// decodeJSONRequest reads one JSON provisioning request, strictly: unknown
// fields and trailing data are refused. body is already size-limited.
func decodeJSONRequest(body io.Reader) (*JSONRequest, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var in JSONRequest
	if err := dec.Decode(&in); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &BadRequestError{Message: "request body is too large", TooLarge: true}
		}
		return nil, &BadRequestError{Message: "body is not a provisioning request: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &BadRequestError{Message: "trailing data after the JSON object"}
	}
	return &in, nil
}

// decodeCSR accepts a PEM CSR or base64 DER (with or without padding).
func decodeCSR(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, &BadRequestError{Message: "csr is required"}
	}
	if block, _ := pem.Decode([]byte(s)); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, &BadRequestError{Message: "csr PEM block is " + block.Type + ", not CERTIFICATE REQUEST"}
		}
		return block.Bytes, nil
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		der, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, &BadRequestError{Message: "csr is neither PEM nor base64 DER"}
	}
	return der, nil
}

// writeJSONError answers err in the JSON error shape.
func writeJSONError(w http.ResponseWriter, log *slog.Logger, err error) {
	status, retry, body := errorAnswer(log, err)
	SetRetryAfter(w.Header(), retry)
	WriteJSON(w, status, body)
}

// errorAnswer is what every front door tells a device about err: an HTTP
// status, how long to wait before retrying, and the JSON error. Refusals
// say only that they are refusals; the reason is in the log and history.
func errorAnswer(log *slog.Logger, err error) (int, time.Duration, JSONError) {
	status, retry := HTTPStatus(err)
	body := JSONError{Code: "internal", Message: "internal error; retry later"}
	switch status {
	case http.StatusAccepted:
		pe, _ := errors.AsType[*PendingError](err)
		body = JSONError{Code: "pending", Message: "waiting for approval; retry the same request later", RequestID: pe.RequestID}
	case http.StatusBadRequest:
		body = JSONError{Code: "bad_request", Message: err.Error()}
		if be, _ := errors.AsType[*BadRequestError](err); be.TooLarge {
			status, body.Code = http.StatusRequestEntityTooLarge, "body_too_large"
		}
	case http.StatusForbidden:
		body = JSONError{Code: "refused", Message: "provisioning refused"}
	case http.StatusConflict:
		body = JSONError{Code: "conflict", Message: "another request with a different CSR is in flight; retry the same CSR or wait"}
	case http.StatusTooManyRequests:
		body = JSONError{Code: "rate_limited", Message: "too many attempts; retry later"}
	default:
		log.Error("provisioning request failed", "err", err)
	}
	if retry > 0 {
		body.RetryAfter = int((retry + time.Second - 1) / time.Second)
	}
	return status, retry, body
}

// WriteJSON answers v as JSON with status, never cached: every answer on the
// device listener is meant for one device at one moment.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// StatusAnswer is the answer of GET PathStatus: the caller's requests that
// wait for approval or for its retry.
type StatusAnswer struct {
	Requests []RequestStatus `json:"requests"`
}

// RequestStatus is one request in a StatusAnswer.
type RequestStatus struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Status    string    `json:"status"`
	Template  string    `json:"template"`
	CreatedAt time.Time `json:"createdAt"`
}

func (p *Pipeline) serveStatus(w http.ResponseWriter, r *http.Request) {
	id, _ := deviceauth.IdentityFrom(r.Context())
	requester := "device:" + id.DeviceID
	if id.Kind == pki.IdentityBirth {
		var err error
		if requester, _, err = birthRequester(id); err != nil {
			writeJSONError(w, p.log, ErrRefused)
			return
		}
	}
	_, inFlight, err := p.st.ProvisioningRequests(r.Context(), requester, "")
	if err != nil {
		writeJSONError(w, p.log, err)
		return
	}
	ans := StatusAnswer{Requests: []RequestStatus{}}
	for _, q := range inFlight {
		ans.Requests = append(ans.Requests, RequestStatus{ID: q.ID, Kind: q.Kind, Status: q.Status, Template: q.Template, CreatedAt: q.CreatedAt})
	}
	WriteJSON(w, http.StatusOK, ans)
}
