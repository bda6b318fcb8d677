package synth

import (
	"testing"
	"time"
)

// BenchmarkLabelledFleet evaluates the default rules on a larger labelled
// fleet than the test (1,000 normal devices, 30 per attack, a day of
// learning and three days judged) and reports the accuracy figures of
// BENCHMARKS.md, and the end-to-end rate (generating the fleet's windows
// and reports, converting and evaluating them) in datapoints per second.
//
//	go test -run x -bench LabelledFleet -benchtime 1x -v ./internal/detect/synth/
func BenchmarkLabelledFleet(b *testing.B) {
	for b.Loop() {
		f := &Fleet{Seed: 2026, Normal: 1000, PerAttack: 30, LearnDays: 1, EvalDays: 3}
		start := time.Now()
		res := f.Evaluate(engineWithDefaults(b))
		elapsed := time.Since(start)
		b.Logf("\n%s", res.Table())
		b.ReportMetric(100*res.DetectionRate, "%detected")
		b.ReportMetric(100*res.FalsePositiveRate, "%normal-flagged/day")
		b.ReportMetric(float64(res.Datapoints)/elapsed.Seconds(), "datapoints/s")
	}
}
