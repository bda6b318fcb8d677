package provision

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// HTTPStatus maps the pipeline's answers onto HTTP for every front door:
// 202 pending, 400 bad request, 403 refused, 409 conflict, 429 rate
// limited, 500 otherwise. retryAfter is set for 202 and 429.
func HTTPStatus(err error) (status int, retryAfter time.Duration) {
	if pe, ok := errors.AsType[*PendingError](err); ok {
		return http.StatusAccepted, pe.RetryAfter
	}
	if rl, ok := errors.AsType[*RateLimitError](err); ok {
		return http.StatusTooManyRequests, rl.RetryAfter
	}
	if _, ok := errors.AsType[*BadRequestError](err); ok {
		return http.StatusBadRequest, 0
	}
	switch {
	case errors.Is(err, ErrRefused):
		return http.StatusForbidden, 0
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, 0
	}
	return http.StatusInternalServerError, 0
}

// SetRetryAfter writes Retry-After in whole seconds, rounded up, at least 1.
func SetRetryAfter(h http.Header, d time.Duration) {
	if d <= 0 {
		return
	}
	secs := int64((d + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}
