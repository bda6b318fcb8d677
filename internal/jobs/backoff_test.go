package jobs

import (
	"testing"
	"time"
)

// TestRetryDelay: the pause starts at the minimum, doubles, never exceeds
// the maximum (however many attempts: no overflow), and a minimum above
// the maximum yields the maximum.
func TestRetryDelay(t *testing.T) {
	lo, hi := time.Second, time.Minute
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		if got := retryDelay(i+1, lo, hi); got != w {
			t.Errorf("retryDelay(%d) = %v, want %v", i+1, got, w)
		}
	}
	for _, attempt := range []int{0, -3} {
		if got := retryDelay(attempt, lo, hi); got != lo {
			t.Errorf("retryDelay(%d) = %v, want the minimum %v", attempt, got, lo)
		}
	}
	for _, attempt := range []int{64, 1000, 1 << 30} {
		if got := retryDelay(attempt, lo, hi); got != hi {
			t.Errorf("retryDelay(%d) = %v, want the maximum %v", attempt, got, hi)
		}
	}
	if got := retryDelay(3, 2*time.Minute, hi); got != hi {
		t.Errorf("retryDelay with min above max = %v, want %v", got, hi)
	}
	// The defaults are what the documentation says.
	c := Config{}.withDefaults()
	if c.RetryMin != time.Second || c.RetryMax != time.Minute {
		t.Errorf("default retry bounds %v..%v, want 1s..1m", c.RetryMin, c.RetryMax)
	}
}
