package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Error codes of the contract (docs/api-contract.md). Clients switch on
// them; messages are for people and may change.
const (
	codeBadJSON           = "bad_json"
	codeUnknownField      = "unknown_field"
	codeInvalidType       = "invalid_type"
	codeValidationFailed  = "validation_failed"
	codeInvalidBOM        = "invalid_bom"
	codeBadCursor         = "bad_cursor"
	codeBadQuery          = "bad_query"
	codeUnauthorized      = "unauthorized"
	codeForbidden         = "forbidden"
	codeNotFound          = "not_found"
	codeMethodNotAllowed  = "method_not_allowed"
	codeDuplicate         = "duplicate"
	codeInvalidTransition = "invalid_transition"
	codeVersionMismatch   = "version_mismatch"
	codeBodyTooLarge      = "body_too_large"
	codeUnsupportedMedia  = "unsupported_media_type"
	codeUnavailable       = "unavailable"
	codeInternal          = "internal"
)

// bomField is the field fleet.Validate names for a BOM that is not valid
// CycloneDX; the contract answers it with its own code, invalid_bom.
const bomField = "manufacturing.bom"

// retryAfterSeconds is the Retry-After of 429 and 503 answers.
const retryAfterSeconds = "1"

// apiError is an error with its HTTP status, and also the JSON body every
// failed request answers with.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Allowed lists the states a device may move to; only for
	// invalid_transition, where an empty list (a final state) is sent as [].
	Allowed []fleet.State `json:"allowed,omitzero"`
	// cause is logged for server errors and never sent.
	cause error
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

func (e *apiError) Unwrap() error { return e.cause }

// errorf returns an apiError; field may be empty.
func errorf(status int, code, field, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// validationError is a 400 validation_failed naming field.
func validationError(field, format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeValidationFailed, field, format, args...)
}

// queryError is a 400 bad_query naming the query parameter.
func queryError(param, format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeBadQuery, param, format, args...)
}

// notFound is the answer for a device or token that does not exist or that
// the caller may not know exists. It wraps store.ErrNotFound so that it
// passes through the store's UpdateDevice unchanged and still reads as
// "not found" to errors.Is.
func notFound(kind, id string) error {
	return &apiError{status: http.StatusNotFound, Code: codeNotFound,
		Message: fmt.Sprintf("no %s with id %q", kind, id), cause: store.ErrNotFound}
}

// toAPIError maps any error a handler returns onto the contract. Unknown
// errors become a 500 whose cause is logged, never shown.
func toAPIError(err error) *apiError {
	if e, ok := errors.AsType[*apiError](err); ok {
		return e
	}
	if te, ok := errors.AsType[*fleet.TransitionError](err); ok {
		allowed := te.Allowed
		if allowed == nil {
			allowed = []fleet.State{}
		}
		return &apiError{status: http.StatusConflict, Code: codeInvalidTransition, Field: "state",
			Message: te.Error(), Allowed: allowed}
	}
	if fe, ok := errors.AsType[*fleet.FieldError](err); ok {
		if fe.Field == bomField {
			return errorf(http.StatusBadRequest, codeInvalidBOM, bomField,
				"the bill of materials is not a valid CycloneDX 1.5+ JSON document: %s", fe.Message)
		}
		return validationError(fe.Field, "%s", fe.Message)
	}
	if mb, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return errorf(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "",
			"request body is larger than %d bytes; send less (split big batches)", mb.Limit)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, codeNotFound, "", "not found")
	case errors.Is(err, store.ErrDuplicate):
		return errorf(http.StatusConflict, codeDuplicate, "identity.serial",
			"a device with this serial is already registered for this factory and model")
	case errors.Is(err, store.ErrVersionMismatch):
		return errorf(http.StatusPreconditionFailed, codeVersionMismatch, "",
			"the device changed since the version in If-Match; read it again and retry")
	case errors.Is(err, store.ErrBadCursor):
		return errorf(http.StatusBadRequest, codeBadCursor, "cursor",
			"the cursor was not issued by Muster; start again without one")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "the request did not finish in time; retry", cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, Code: codeInternal,
		Message: "internal error; the server log has the details", cause: err}
}

// writeError answers r with err in the contract's error shape.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toAPIError(err)
	switch {
	case e.status >= 500:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"status", e.status, "err", err)
	case e.status == http.StatusUnauthorized:
		// Log refusals: repeated ones are how stolen or stale tokens show.
		s.log.InfoContext(r.Context(), "request unauthenticated", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "reason", e.Message)
	}
	switch e.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="muster"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	s.writeJSON(w, r, e.status, e)
}

// prefixField puts a body field's path under prefix, for errors from
// validators of a nested part (fleet.ValidateWipe names "method", the
// request's field is "wipe.method").
func prefixField(prefix string, err error) error {
	if fe, ok := errors.AsType[*fleet.FieldError](err); ok {
		return &fleet.FieldError{Field: prefix + "." + fe.Field, Message: fe.Message}
	}
	return err
}
