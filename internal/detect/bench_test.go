package detect

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEvaluate measures datapoints evaluated per second by the
// default rules on learned baselines: each observation is one gateway
// window (11 datapoints) of one of 10,000 devices. The goal is at least
// 1,000,000 datapoints per second per node.
func BenchmarkEvaluate(b *testing.B) {
	e := New(Config{LearningSamples: 20})
	rules := DefaultRules()
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			b.Fatal(err)
		}
	}
	e.SetRules(rules)
	const devices = 10000
	obs := make([]Observation, devices)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range obs {
		obs[i] = Observation{DeviceID: fmt.Sprintf("dev-%05d", i), Cohort: "model-a", Values: make([]Value, 11)}
		for j, m := range GatewayMetrics {
			obs[i].Values[j] = Value{m, r.Float64() * 100}
		}
	}
	// Learn first, so the benchmark judges rather than learns.
	for k := 0; k < 25; k++ {
		for i := range obs {
			obs[i].At = t0.Add(time.Duration(k) * 5 * time.Minute)
			e.Evaluate(&obs[i], nil)
		}
	}
	var points atomic.Int64
	var step atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var buf []Finding
		var n int64
		for pb.Next() {
			k := step.Add(1)
			o := obs[k%devices]
			o.At = t0.Add(time.Duration(25+k/devices) * 5 * time.Minute)
			buf = e.Evaluate(&o, buf[:0])
			n += int64(len(o.Values))
		}
		points.Add(n)
	})
	b.ReportMetric(float64(points.Load())/time.Since(start).Seconds(), "datapoints/s")
}
