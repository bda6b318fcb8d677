package provision

import (
	"sync"
	"time"
)

// Default attempt limit per requester (birth identity, claim or device):
// a burst of DefaultRateBurst, then one attempt every DefaultRateEvery.
// Enough for a device that retries a pending approval or a lost answer,
// far too little to hammer the CA.
const (
	DefaultRateBurst = 10
	DefaultRateEvery = 6 * time.Second
)

// limiter is a token bucket per key. Buckets that have refilled are
// dropped once the map grows, so memory follows the active requesters.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
	full   time.Time // when the bucket is full again
}

// maxIdleBuckets is the map size at which full buckets are swept.
const maxIdleBuckets = 1 << 16

func newLimiter() *limiter { return &limiter{buckets: map[string]*bucket{}} }

// allow takes one token from key's bucket of the given shape, or says how
// long until one is there.
func (l *limiter) allow(key string, rl RateLimit, now time.Time) (bool, time.Duration) {
	every := time.Duration(rl.Every)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxIdleBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(rl.Burst), at: now}
		l.buckets[key] = b
	}
	b.tokens = min(float64(rl.Burst), b.tokens+float64(now.Sub(b.at))/float64(every))
	b.at = now
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(every))
		return false, max(wait, time.Second)
	}
	b.tokens--
	b.full = now.Add(time.Duration((float64(rl.Burst) - b.tokens) * float64(every)))
	return true, 0
}

func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if !now.Before(b.full) {
			delete(l.buckets, k)
		}
	}
}
