package detect

import "math"

// ewma is an exponentially weighted mean and variance of one metric: the
// online baseline the anomaly score compares a datapoint with. alpha is
// 2/(span+1), so the baseline remembers about span datapoints (a day of
// five-minute windows by default) and follows slow drift without
// forgetting the daily cycle.
type ewma struct {
	n    int
	mean float64
	vari float64
}

func (b *ewma) add(x, alpha float64) {
	if b.n == 0 {
		b.mean, b.n = x, 1
		return
	}
	// Early on the weight is 1/n, an exact running mean, so the first
	// datapoints do not dominate for a whole span.
	a := max(alpha, 1/float64(b.n+1))
	d := x - b.mean
	b.mean += a * d
	b.vari = (1 - a) * (b.vari + a*d*d)
	b.n++
}

// z is how many (floored) standard deviations x lies above the mean. The
// floor keeps a metric that has been constant, or that counts rare events,
// from turning one extra event into a huge score: the deviation is
// measured against at least max(1, 10% of the mean).
func (b *ewma) z(x float64) float64 {
	floor := max(1, 0.1*math.Abs(b.mean))
	return (x - b.mean) / math.Sqrt(b.vari+floor*floor)
}

// Baseline is a snapshot of one learned baseline, for the API.
type Baseline struct {
	Metric  string  `json:"metric"`
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	StdDev  float64 `json:"stdDev"`
}

func (b *ewma) snapshot(metric string) Baseline {
	return Baseline{Metric: metric, Samples: b.n, Mean: b.mean, StdDev: math.Sqrt(b.vari)}
}
