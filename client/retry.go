package client

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryPolicy says how often and how patiently a request is retried.
type retryPolicy struct {
	attempts int           // total tries, including the first
	base     time.Duration // first backoff; doubles per attempt
	max      time.Duration // cap on any single wait, Retry-After included
}

func defaultRetryPolicy() retryPolicy {
	return retryPolicy{attempts: 4, base: 250 * time.Millisecond, max: 30 * time.Second}
}

// backoff returns the wait after the given failed attempt (1-based):
// base·2^(attempt-1), capped, with "equal jitter" (half fixed, half random)
// so that many clients throttled at once do not come back in lockstep, while
// each still waits at least half the nominal time.
func (p retryPolicy) backoff(attempt int) time.Duration {
	d := p.base
	for i := 1; i < attempt && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter parses a Retry-After header, in delay-seconds or HTTP-date form
// (RFC 9110, section 10.2.3).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// Anything beyond a day is nonsense for this API; clamping here
		// also keeps the multiplication from overflowing.
		return time.Duration(min(secs, 86400)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
