package provision

import (
	"errors"
	"fmt"
	"time"
)

// Errors front doors translate into their wire format. Callers compare
// with errors.Is and errors.As.
var (
	// ErrRefused is all a refused device learns. The reason is in the
	// log and the device's history.
	ErrRefused = errors.New("provisioning refused")
	// ErrConflict means another request of the same requester, with a
	// different CSR, is still in flight (HTTP 409).
	ErrConflict = errors.New("another provisioning request with a different CSR is in flight")
)

// BadRequestError is a request the pipeline cannot even read: a CSR that
// is not DER, parameters that are not an object. Its message is safe to
// show the device.
type BadRequestError struct {
	Message string
	// TooLarge marks a body over the size limit (HTTP 413).
	TooLarge bool
}

func (e *BadRequestError) Error() string { return "bad provisioning request: " + e.Message }

// PendingError means the request waits for approval (HTTP 202 with
// Retry-After). Retrying the same request returns the certificate once it
// is approved.
type PendingError struct {
	RequestID  string
	RetryAfter time.Duration
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("provisioning request %s waits for approval; retry in %s", e.RequestID, e.RetryAfter)
}

// RateLimitError means the requester made too many attempts (HTTP 429 with
// Retry-After).
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many provisioning attempts; retry in %s", e.RetryAfter)
}

// refusal is why the pipeline refused a request, kept for the log and the
// history; the device gets ErrRefused.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "refused: " + r.reason }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}
