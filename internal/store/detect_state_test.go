package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestDetectStates: batches are upserted in one go (more rows than one
// statement holds), a node loads what it wrote, any node loads one device,
// states of unknown devices are skipped, a bad batch writes nothing, and a
// device's state goes when the device row does.
func TestDetectStates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const n = detectStateChunk*2 + 7
		ds := make([]*fleet.Device, n)
		for i := range ds {
			ds[i] = newTestDevice(fmt.Sprintf("ds-%04d", i))
		}
		if _, err := s.CreateDevices(ctx, ds, "tester"); err != nil {
			t.Fatal(err)
		}
		blob := func(i, gen int) []byte { return fmt.Appendf(nil, "\x01d\x00\xff%d-%d", i, gen) }
		batch := func(gen int, devs []*fleet.Device) []DetectState {
			var out []DetectState
			for i, d := range devs {
				out = append(out, DetectState{Key: d.ID, State: blob(i, gen)})
			}
			return out
		}
		states := append(batch(1, ds), DetectState{Key: "dev_unknown", State: []byte{1}})
		written, err := s.SaveDeviceDetectStates(ctx, "n1", states)
		if err != nil || written != n {
			t.Fatalf("SaveDeviceDetectStates = %d, %v; want %d (the unknown device skipped)", written, err, n)
		}
		// n2 takes over the first ten devices; the later entry of a
		// duplicated device wins.
		over := batch(2, ds[:10])
		over = append(over, DetectState{Key: ds[0].ID, State: []byte("last")})
		if _, err := s.SaveDeviceDetectStates(ctx, "n2", over); err != nil {
			t.Fatal(err)
		}
		load := func(node string) map[string][]byte {
			got := map[string][]byte{}
			if err := s.DeviceDetectStates(ctx, node, func(st DetectState) error {
				if st.Node != node {
					t.Fatalf("state of %s says node %s", st.Key, st.Node)
				}
				got[st.Key] = st.State
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		n1, n2 := load("n1"), load("n2")
		if len(n1) != n-10 || len(n2) != 10 {
			t.Fatalf("n1 has %d states, n2 %d; want %d and 10", len(n1), len(n2), n-10)
		}
		if !bytes.Equal(n1[ds[20].ID], blob(20, 1)) || !bytes.Equal(n2[ds[0].ID], []byte("last")) || !bytes.Equal(n2[ds[5].ID], blob(5, 2)) {
			t.Fatal("states differ from what was written")
		}
		one, err := s.DeviceDetectState(ctx, ds[5].ID)
		if err != nil || one.Node != "n2" || !bytes.Equal(one.State, blob(5, 2)) {
			t.Fatalf("DeviceDetectState = %+v, %v", one, err)
		}
		if _, err := s.DeviceDetectState(ctx, "dev_unknown"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("state of an unknown device: %v, want ErrNotFound", err)
		}
		stop := errors.New("stop")
		if err := s.DeviceDetectStates(ctx, "n1", func(DetectState) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("walk error = %v, want fn's", err)
		}

		// A batch with an empty state writes nothing at all.
		bad := append(batch(3, ds[:3]), DetectState{Key: ds[3].ID})
		if _, err := s.SaveDeviceDetectStates(ctx, "n3", bad); err == nil {
			t.Fatal("a state without bytes was accepted")
		}
		if got := load("n3"); len(got) != 0 {
			t.Fatalf("a refused batch wrote %d states", len(got))
		}
		if _, err := s.SaveDeviceDetectStates(ctx, "", batch(3, ds[:1])); err == nil {
			t.Fatal("a state without node was accepted")
		}

		// Deleting the device deletes its state (the store itself never
		// deletes devices; an operator's cleanup may).
		if _, err := s.DB().ExecContext(ctx, s.d.rebind("DELETE FROM devices WHERE id = ?"), ds[20].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeviceDetectState(ctx, ds[20].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("state of a deleted device: %v, want ErrNotFound", err)
		}
		if got := countRows(t, s, "detect_device_state", "device_id", ds[21].ID); got != 1 {
			t.Fatalf("a neighbour's state went too: %d rows", got)
		}

		// Cohorts: each node keeps its own.
		if err := s.SaveCohortDetectStates(ctx, "n1", []DetectState{{Key: "m1", State: []byte("a")}, {Key: "m2", State: []byte("b")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCohortDetectStates(ctx, "n2", []DetectState{{Key: "m1", State: []byte("c")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCohortDetectStates(ctx, "n1", []DetectState{{Key: "m1", State: []byte("d")}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCohortDetectStates(ctx, "n1", []DetectState{{Key: "", State: []byte("x")}}); err == nil {
			t.Fatal("a cohort state without cohort was accepted")
		}
		got := map[string]string{}
		if err := s.CohortDetectStates(ctx, "n1", func(st DetectState) error { got[st.Key] = string(st.State); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "map[m1:d m2:b]" {
			t.Fatalf("n1's cohorts = %v", got)
		}
	})
}

// BenchmarkSaveDeviceDetectStates times a checkpoint of 100,000 devices'
// state (600 bytes each, the size of a device with the gateway metrics, a
// custom metric and the default rules), in one transaction, on a store
// that already has the rows (every checkpoint after the first updates):
//
//	go test -run '^$' -bench SaveDeviceDetectStates -benchtime 3x ./internal/store/
func BenchmarkSaveDeviceDetectStates(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			u := sqliteTestURL(b)
			if backend == "postgres" {
				u = pgTestURL(b)
			}
			s := openTestStore(b, u)
			ctx := context.Background()
			const n = 100000
			states := make([]DetectState, 0, n)
			for start := 0; start < n; start += 5000 {
				ds := make([]*fleet.Device, 5000)
				for i := range ds {
					ds[i] = newTestDevice(fmt.Sprintf("bench-%06d", start+i))
				}
				if _, err := s.CreateDevices(ctx, ds, "bench"); err != nil {
					b.Fatal(err)
				}
				for _, d := range ds {
					st := bytes.Repeat([]byte{byte(start)}, 600)
					states = append(states, DetectState{Key: d.ID, State: st})
				}
			}
			if _, err := s.SaveDeviceDetectStates(ctx, "n1", states); err != nil {
				b.Fatal(err)
			}
			runs := 0
			for b.Loop() {
				runs++
				if written, err := s.SaveDeviceDetectStates(ctx, "n1", states); err != nil || written != n {
					b.Fatal(written, err)
				}
			}
			b.ReportMetric(float64(n)*float64(runs)/b.Elapsed().Seconds(), "states/s")
		})
	}
}
