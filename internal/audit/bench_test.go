package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// benchDevices is the fleet size of BenchmarkAuditRun; MUSTER_BENCH_AUDIT_DEVICES
// overrides it.
func benchDevices() int {
	if n, err := strconv.Atoi(os.Getenv("MUSTER_BENCH_AUDIT_DEVICES")); err == nil && n > 0 {
		return n
	}
	return 100000
}

// BenchmarkAuditRun measures a full audit run (every check) over a fleet
// of active devices, each with an operational certificate and firmware,
// most of them seen by the gateway and metered, against two advisories.
// One device in ten has a certificate over a year old, one in twenty runs
// vulnerable firmware, one in ten was not seen for 40 days: about 25,000
// findings. The first run (which inserts the findings) is reported as
// first-run-s; the timed runs are re-runs, which update them, as a
// scheduled audit does.
func BenchmarkAuditRun(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchAudit(b, "sqlite://"+filepath.Join(b.TempDir(), "muster.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		u := pgtest.URL(b)
		if u == "" {
			b.Skip("MUSTER_TEST_DATABASE_URL not set")
		}
		benchAudit(b, u)
	})
}

func benchAudit(b *testing.B, url string) {
	ctx := b.Context()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(ctx, store.Config{URL: url, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f := &fixture{t: b, st: st}
	pem := f.cert(now, time.Hour).CertPEM
	n := benchDevices()
	const batch = 1000
	var presence []store.Presence
	var windows []store.MeterWindow
	w := now.Truncate(5 * time.Minute)
	for start := 0; start < n; start += batch {
		items := make([]store.ManufactureItem, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			fw := "1.4.2"
			if i%20 == 0 {
				fw = "1.3.0"
			}
			issued := now.Add(-30 * 24 * time.Hour)
			if i%10 == 0 {
				issued = now.Add(-400 * 24 * time.Hour)
			}
			d := &fleet.Device{Identity: fleet.Identity{Serial: fmt.Sprintf("B%07d", i), Model: "m1", Factory: "f1"},
				Lifecycle:    fleet.Lifecycle{State: fleet.StateActive, StateChangedAt: now.Add(-60 * 24 * time.Hour)},
				Provisioning: fleet.Provisioning{Firmware: []fleet.FirmwareVersion{{Component: "acme-fw", Version: fw}}}}
			items = append(items, store.ManufactureItem{Device: d, Cert: &store.Certificate{CAID: "ca_op", Serial: fmt.Sprintf("%x", i+1),
				Kind: store.CertOperational, Fingerprint: fmt.Sprintf("fp%08d", i), NotBefore: issued, NotAfter: issued.Add(800 * 24 * time.Hour), CertPEM: pem}})
		}
		if _, err := st.ManufactureDevices(ctx, items, "bench"); err != nil {
			b.Fatal(err)
		}
		for i, it := range items {
			seen := now.Add(-time.Minute)
			if (start+i)%10 == 5 {
				seen = now.Add(-40 * 24 * time.Hour)
			}
			presence = append(presence, store.Presence{DeviceID: it.Device.ID, Node: "n1", ConnectedAt: seen, LastSeen: seen})
			if (start+i)%10 != 5 {
				windows = append(windows, store.MeterWindow{DeviceID: it.Device.ID, Start: w, Seconds: 300, Attempts: 1, Connects: 1,
					MsgsIn: 10, BytesIn: 1000, SourceIPs: []string{"10.0.0.1"}})
			}
		}
	}
	if err := st.SavePresence(ctx, presence); err != nil {
		b.Fatal(err)
	}
	if err := st.SaveMeterWindows(ctx, "n1", windows); err != nil {
		b.Fatal(err)
	}
	importTestdata(b, st)
	r, err := New(Config{Store: st, Node: "bench", Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	first, err := r.Run(ctx, Request{Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	firstTook := time.Since(t0)
	var run *store.AuditRun
	for b.Loop() {
		now = now.Add(time.Second)
		if run, err = r.Run(ctx, Request{Actor: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	if run.Counts.Findings != first.Counts.Findings || run.Counts.New != 0 {
		b.Fatalf("re-run counts %+v, first %+v", run.Counts, first.Counts)
	}
	b.ReportMetric(firstTook.Seconds(), "first-run-s")
	b.ReportMetric(float64(first.Counts.Findings), "findings")
	b.ReportMetric(float64(n), "devices")
}
