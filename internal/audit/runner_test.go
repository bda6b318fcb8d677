package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// TestRunAllChecksTwice: a full run records its history, and a second
// run over the same fleet updates its findings instead of adding to them.
func TestRunAllChecksTwice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		importTestdata(t, f.st)
		f.device(fleet.StateActive, f.cert(epoch.Add(-400*24*time.Hour), 420*24*time.Hour), func(d *fleet.Device) {
			d.Provisioning.Firmware = []fleet.FirmwareVersion{{Component: "acme-fw", Version: "1.0.0"}}
		})
		r, err := New(Config{Store: f.st, Node: "n1", Now: func() time.Time { return *f.now.Load() }})
		if err != nil {
			t.Fatal(err)
		}
		first, err := r.Run(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Checks) != len(All()) || first.Status != store.AuditDone || first.Actor != "auditor/alice" || first.Kind != store.AuditManual {
			t.Errorf("run = %+v", first)
		}
		// vulnerable-firmware, cert-expiring, cert-too-old.
		if first.Counts.Findings != 3 || first.Counts.New != 3 || first.Counts.BySeverity[SeverityHigh] != 1 {
			t.Errorf("counts = %+v", first.Counts)
		}
		f.setNow(epoch.Add(time.Minute))
		second, err := r.Run(t.Context(), Request{Actor: "auditor/alice"})
		if err != nil {
			t.Fatal(err)
		}
		if second.Counts.Findings != 3 || second.Counts.New != 0 || second.Counts.Open != 3 {
			t.Errorf("second counts = %+v", second.Counts)
		}
		all, _, _ := f.st.ListFindings(t.Context(), store.FindingFilter{}, "", 100)
		if len(all) != 3 {
			t.Errorf("%d findings after two runs, want 3", len(all))
		}
		runs, _ := f.st.AuditRuns(t.Context(), 10)
		if len(runs) != 2 || runs[0].ID != second.ID {
			t.Errorf("runs = %+v", runs)
		}
	})
}

func TestRunBadInput(t *testing.T) {
	f := newFixture(t)
	r, _ := New(Config{Store: f.st})
	if _, err := r.Run(t.Context(), Request{Checks: []string{"weak-key", "no-such-check"}}); !errors.Is(err, ErrUnknownCheck) || !strings.Contains(err.Error(), "cert-shared") {
		t.Errorf("unknown check: %v", err)
	}
	if runs, _ := f.st.AuditRuns(t.Context(), 10); len(runs) != 0 {
		t.Errorf("a refused request recorded a run: %+v", runs)
	}
	if _, err := New(Config{Store: f.st, Params: Params{NotSeenAfter: -time.Hour}}); err == nil {
		t.Error("negative parameter accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("runner without a store")
	}
	// A check that fails (a stored advisory broken behind Muster's back)
	// fails the run and leaves the findings alone.
	importTestdata(t, f.st)
	if _, err := f.st.DB().ExecContext(t.Context(), `UPDATE advisories SET doc = '{"id":' WHERE id = 'MUSTER-2026-0001'`); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(t.Context(), Request{Checks: []string{"vulnerable-firmware"}})
	if err == nil || !strings.Contains(err.Error(), "MUSTER-2026-0001") {
		t.Fatalf("broken advisory: %v", err)
	}
	runs, _ := f.st.AuditRuns(t.Context(), 10)
	if len(runs) != 1 || runs[0].Status != store.AuditFailed || !strings.Contains(runs[0].Error, "MUSTER-2026-0001") {
		t.Errorf("failed run = %+v", runs)
	}
}

// TestScheduleOncePerSlot: two nodes on one database audit each slot once.
func TestScheduleOncePerSlot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		f.device(fleet.StateActive, nil)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(t.Context())
		for _, node := range []string{"n1", "n2", "n3"} {
			r, err := New(Config{Store: f.st, Node: node, Now: func() time.Time { return *f.now.Load() }})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { r.RunSchedule(ctx, time.Hour) })
		}
		waitRuns := func(n int) []store.AuditRun {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for {
				runs, err := f.st.AuditRuns(t.Context(), 10)
				if err != nil {
					t.Fatal(err)
				}
				done := 0
				for _, r := range runs {
					if r.Status == store.AuditDone {
						done++
					}
				}
				if done >= n || time.Now().After(deadline) {
					return runs
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitRuns(1)
		time.Sleep(200 * time.Millisecond) // let the other nodes try the slot too
		runs, _ := f.st.AuditRuns(t.Context(), 10)
		cancel()
		wg.Wait()
		if len(runs) != 1 || runs[0].Kind != store.AuditScheduled || runs[0].Slot != SlotOf(epoch, time.Hour) || runs[0].Actor != "schedule" {
			t.Fatalf("runs = %+v", runs)
		}
	})
}

func TestSlotOf(t *testing.T) {
	a := SlotOf(time.Date(2026, 11, 24, 10, 59, 0, 0, time.UTC), time.Hour)
	b := SlotOf(time.Date(2026, 11, 24, 10, 1, 0, 0, time.FixedZone("x", 3600)), time.Hour)
	if a != "scheduled:2026-11-24T10:00:00Z" || b != "scheduled:2026-11-24T09:00:00Z" {
		t.Errorf("slots %s %s", a, b)
	}
}
