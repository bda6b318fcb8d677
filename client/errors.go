package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error codes the API answers with (docs/api-contract.md). Compare them with
// HasCode or by reading APIError.Code.
const (
	CodeBadJSON              = "bad_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidType          = "invalid_type"
	CodeValidationFailed     = "validation_failed"
	CodeInvalidBOM           = "invalid_bom"
	CodeBadCursor            = "bad_cursor"
	CodeBadQuery             = "bad_query"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeDuplicate            = "duplicate"
	CodeInvalidTransition    = "invalid_transition"
	CodeVersionMismatch      = "version_mismatch"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeRateLimited          = "rate_limited"
	CodeUnavailable          = "unavailable"
)

// APIError is a failure the server reported. Field names the request field
// at fault, when one is; Allowed lists the states a device may move to, for
// CodeInvalidTransition.
type APIError struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Field   string   `json:"field,omitempty"`
	Allowed []string `json:"allowed,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("muster API: ")
	b.WriteString(e.Message)
	fmt.Fprintf(&b, " (HTTP %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, ", code %s", e.Code)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ", field %s", e.Field)
	}
	b.WriteString(")")
	if e.Code == CodeInvalidTransition {
		if len(e.Allowed) == 0 {
			b.WriteString("; no further state change is allowed")
		} else {
			fmt.Fprintf(&b, "; allowed next states: %s", strings.Join(e.Allowed, ", "))
		}
	}
	return b.String()
}

// HasCode reports whether err is, or wraps, an *APIError with the given code.
func HasCode(err error, code string) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// maxErrorBytes bounds how much of an error body is read; the API's error
// documents are tiny, anything bigger is a proxy's HTML page.
const maxErrorBytes = 64 << 10

// readAPIError turns a non-2xx response into an *APIError and closes the
// body. A body that is not the API's error document (a proxy's page, say)
// still yields a useful message from the status and the text.
func readAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, e) == nil && (e.Code != "" || e.Message != "") {
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return e
	}
	e.Code, e.Field, e.Allowed = "", "", nil
	text := strings.TrimSpace(string(raw))
	if text == "" || strings.HasPrefix(text, "<") || len(text) > 512 {
		text = http.StatusText(resp.StatusCode)
	}
	if text == "" {
		text = fmt.Sprintf("HTTP status %d", resp.StatusCode)
	}
	e.Message = text
	return e
}
