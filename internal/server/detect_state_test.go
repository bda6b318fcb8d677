package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// TestDetectionStateSurvivesRestart: a node learns a device, stops
// gracefully, and a node started after it on the same store judges the
// device at once: it flags a new listening port without learning again.
// A node that does not persist the state (the control) is learning and
// stays silent on the same report. A second node that never saw the
// device fetches its state on first sight.
func TestDetectionStateSurvivesRestart(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testDetectionStateSurvivesRestart(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		if u == "" {
			t.Skip(pgtest.Env + " not set")
		}
		testDetectionStateSurvivesRestart(t, u)
	})
}

// storeWithDevice opens the store at url, closed when the test ends, with
// one device of model m1.
func storeWithDevice(t *testing.T, url string) (*store.Store, *fleet.Device) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{URL: url, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dev := &fleet.Device{Identity: fleet.Identity{Serial: "s-1", Model: "m1", Factory: "f1", Batch: "b1"}}
	if err := st.CreateDevice(t.Context(), dev, "test"); err != nil {
		t.Fatal(err)
	}
	return st, dev
}

func testDetectionStateSurvivesRestart(t *testing.T, url string) {
	ctx := t.Context()
	st, dev := storeWithDevice(t, url)
	log := slog.New(slog.DiscardHandler)
	const learning = 5
	// Only the checkpoint at the stop writes: the ticker never fires.
	cfg := DetectConfig{LearningSamples: learning, CheckpointEvery: time.Hour}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	report := func(ports int) *gateway.Report {
		r := &gateway.Report{Version: 1}
		for p := range ports {
			r.ListeningPorts = append(r.ListeningPorts, gateway.ListeningPort{Protocol: "tcp", Port: 8000 + p})
		}
		return r
	}
	start := func(d *detection) (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.run(runCtx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}

	// n1 learns the device: two listening ports, always.
	n1, err := newDetection(ctx, st, nil, cfg, "n1", log)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(n1)
	for k := range learning + 3 {
		n1.ObserveReport(dev.ID, t0.Add(time.Duration(k)*5*time.Minute), report(2))
	}
	learned, learningNow, _ := n1.DeviceBaselines(dev.ID)
	if learningNow {
		t.Fatalf("n1 still learning after %d reports: %+v", learning+3, learned)
	}
	stop() // graceful: checkpoints

	attackAt := t0.Add(24 * time.Hour)
	attack := func(e *detect.Engine) []detect.Finding {
		o := detect.NewReports().Observation(dev.ID, "m1", attackAt, report(10))
		return e.Evaluate(&o, nil)
	}
	hasRule := func(fs []detect.Finding, id string) bool {
		for _, f := range fs {
			if f.RuleID == id {
				return true
			}
		}
		return false
	}

	// Control: a node that keeps its state in memory only starts blind.
	blind, err := newDetection(ctx, st, nil, DetectConfig{LearningSamples: learning, CheckpointEvery: -1}, "n1", log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := blind.DeviceBaselines(dev.ID); ok {
		t.Fatal("control: a node without the restore knows the device")
	}
	if fs := attack(blind.engine); hasRule(fs, "new-listening-port") {
		t.Fatalf("control: a learning node flagged the port: %+v", fs)
	}

	// A state this build cannot read (a later format, damage) costs only
	// that device's baselines, never the start.
	other := &fleet.Device{Identity: fleet.Identity{Serial: "s-2", Model: "m1", Factory: "f1", Batch: "b1"}}
	if err := st.CreateDevice(ctx, other, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveDeviceDetectStates(ctx, "n1", []store.DetectState{{Key: other.ID, State: []byte{detect.StateVersion + 1, 'd', 0}}}); err != nil {
		t.Fatal(err)
	}

	// The restarted n1 judges at once.
	n1b, err := newDetection(ctx, st, nil, cfg, "n1", log)
	if err != nil {
		t.Fatal(err)
	}
	restored, learningNow, ok := n1b.DeviceBaselines(dev.ID)
	if !ok || learningNow || len(restored) != len(learned) || restored[0] != learned[0] {
		t.Fatalf("restored baselines %+v (learning %v), want %+v", restored, learningNow, learned)
	}
	if _, _, ok := n1b.DeviceBaselines(other.ID); ok {
		t.Fatal("a state of an unknown format was restored")
	}
	stop = start(n1b)
	n1b.ObserveReport(dev.ID, attackAt, report(10))
	waitFor(t, 10*time.Second, "the restarted node raises new-listening-port", func() bool {
		as, _, err := st.ListAlerts(ctx, store.AlertFilter{DeviceID: dev.ID}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.RuleID == "new-listening-port" && a.Node == "n1" {
				return true
			}
		}
		return false
	})
	stop()

	// n2 never wrote the device's state: it fetches it on first sight,
	// without holding up the report that revealed the device.
	n2, err := newDetection(ctx, st, nil, cfg, "n2", log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := n2.DeviceBaselines(dev.ID); ok {
		t.Fatal("n2 restored a device n1 wrote")
	}
	stop = start(n2)
	defer stop()
	n2.ObserveReport(dev.ID, attackAt.Add(5*time.Minute), report(2))
	waitFor(t, 10*time.Second, "n2 fetches the device's state", func() bool {
		_, learningNow, ok := n2.DeviceBaselines(dev.ID)
		return ok && !learningNow
	})
}

// BenchmarkDetectCheckpoint times a node's checkpoint of 100,000 devices
// that all changed since the last one (each metered by the gateway, with
// learned baselines): encoding under the shard locks and one upsert
// transaction per shard.
//
//	go test -run '^$' -bench DetectCheckpoint -benchtime 3x ./internal/server/
func BenchmarkDetectCheckpoint(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			url := "sqlite://" + filepath.Join(b.TempDir(), "m.db")
			if backend == "postgres" {
				if url = pgtest.URL(b); url == "" {
					b.Skip(pgtest.Env + " not set")
				}
			}
			ctx := context.Background()
			st, err := store.Open(ctx, store.Config{URL: url, DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			d, err := newDetection(ctx, st, nil, DetectConfig{LearningSamples: 20, CheckpointEvery: time.Hour}, "n1", slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			const n = 100000
			var ids []string
			for start := 0; start < n; start += 5000 {
				ds := make([]*fleet.Device, 5000)
				for i := range ds {
					ds[i] = &fleet.Device{Identity: fleet.Identity{Serial: fmt.Sprintf("b-%06d", start+i), Model: "m1", Factory: "f1", Batch: "b1"}}
				}
				if _, err := st.CreateDevices(ctx, ds, "bench"); err != nil {
					b.Fatal(err)
				}
				for _, dev := range ds {
					ids = append(ids, dev.ID)
				}
			}
			r := rand.New(rand.NewPCG(1, 1))
			t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			observeAll := func(k int) {
				for _, id := range ids {
					o := detect.Observation{DeviceID: id, Cohort: "m1", At: t0.Add(time.Duration(k) * 5 * time.Minute)}
					for _, m := range detect.GatewayMetrics {
						o.Values = append(o.Values, detect.Value{Metric: m, Value: r.Float64() * 100})
					}
					d.engine.Evaluate(&o, nil)
				}
			}
			for k := range 25 {
				observeAll(k)
			}
			if err := d.checkpoint(ctx); err != nil { // the first inserts
				b.Fatal(err)
			}
			k := 25
			for b.Loop() {
				b.StopTimer()
				observeAll(k)
				k++
				b.StartTimer()
				if err := d.checkpoint(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			start := time.Now()
			restarted, err := newDetection(ctx, st, nil, DetectConfig{LearningSamples: 20, CheckpointEvery: time.Hour}, "n1", slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "restore-s")
			if _, learning, _ := restarted.DeviceBaselines(ids[0]); learning {
				b.Fatal("not restored")
			}
		})
	}
}

// TestDetectionCheckpointsWhileRunning: the periodic checkpoint writes a
// device's learned state while the node runs, not only when it stops, so
// a crash loses at most one interval.
func TestDetectionCheckpointsWhileRunning(t *testing.T) {
	ctx := t.Context()
	st, dev := storeWithDevice(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"))
	d, err := newDetection(ctx, st, nil, DetectConfig{LearningSamples: 5, CheckpointEvery: 20 * time.Millisecond}, "n1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	d.ObserveReport(dev.ID, time.Now(), &gateway.Report{Version: 1, ListeningPorts: []gateway.ListeningPort{{Protocol: "tcp", Port: 8080}}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := st.DeviceDetectState(ctx, dev.ID)
		if err == nil && s.Node == "n1" && len(s.State) > 0 {
			return
		}
		if !errors.Is(err, store.ErrNotFound) && err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of the observed device while the node runs")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
