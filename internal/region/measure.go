package region

import (
	"math"
	"slices"
)

// Plausibility bounds of a round-trip time. Anything outside them is
// treated as missing: a clock that went backwards, a probe that timed out,
// a device that made numbers up.
const (
	// MinPlausibleMs is below what a TLS handshake and one request can
	// take even on loopback.
	MinPlausibleMs = 0.01
	// MaxPlausibleMs is the agent's probe timeout.
	MaxPlausibleMs = 10_000
	// MaxSamples bounds the samples of one measurement.
	MaxSamples = 32
)

// Measurement is a device's round-trip times to one region's probe: the
// median and, optionally, the samples it was taken from, in milliseconds.
type Measurement struct {
	MedianMs  float64   `json:"medianMs"`
	SamplesMs []float64 `json:"samplesMs,omitempty"`
}

// Median is the median of xs (the mean of the middle two for an even
// count); NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func plausible(ms float64) bool {
	return !math.IsNaN(ms) && !math.IsInf(ms, 0) && ms >= MinPlausibleMs && ms <= MaxPlausibleMs
}

// Effective is the median Muster uses for m, and whether it is usable.
// With samples, the median is recomputed from them (the device's own
// median is ignored) and every sample must be plausible, at most
// MaxSamples of them; without, the reported median must be plausible.
func (m Measurement) Effective() (float64, bool) {
	if len(m.SamplesMs) == 0 {
		return m.MedianMs, plausible(m.MedianMs)
	}
	if len(m.SamplesMs) > MaxSamples {
		return 0, false
	}
	for _, s := range m.SamplesMs {
		if !plausible(s) {
			return 0, false
		}
	}
	return Median(m.SamplesMs), true
}

// Medians are the usable medians of ms, by region, rounded to 0.1 ms (the
// resolution decisions are made at, so that ties are ties).
func Medians(ms map[string]Measurement) map[string]float64 {
	out := make(map[string]float64, len(ms))
	for name, m := range ms {
		if v, ok := m.Effective(); ok {
			out[name] = math.Round(v*10) / 10
		}
	}
	return out
}
