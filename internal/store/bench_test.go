package store

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// The registry benchmarks load a realistic fleet and time list queries over
// it. They take minutes and gigabytes, so they run only when asked:
//
//	MUSTER_BENCH=1 go test -run TestBench -timeout 60m -v ./internal/store/
//
// MUSTER_BENCH_DEVICES overrides the fleet size (default 1,000,000);
// MUSTER_TEST_DATABASE_URL adds PostgreSQL; MUSTER_BENCH_LIST=0 and
// MUSTER_BENCH_COUNT=0 leave out the list and the count queries.

const (
	benchBatch  = 5000
	benchModels = 20
)

// benchStates is the state mix of a fleet in service.
var benchStates = []struct {
	state fleet.State
	per   int // per thousand
}{
	{fleet.StateActive, 600}, {fleet.StateProvisioned, 150}, {fleet.StateManufactured, 100},
	{fleet.StatePending, 50}, {fleet.StateSuspended, 40}, {fleet.StateQuarantined, 20},
	{fleet.StateReprovisioning, 15}, {fleet.StateDecommissioned, 15}, {fleet.StateRejected, 10},
}

// benchBOMs is one CycloneDX BOM per model; two models carry an esp32.
func benchBOMs() [][]byte {
	boms := make([][]byte, benchModels)
	for m := range boms {
		mcu := "stm32f4"
		if m%10 == 7 {
			mcu = "esp32"
		}
		boms[m] = fmt.Appendf(nil, `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[`+
			`{"type":"device","name":"board-m%02d","version":"r%d","components":[{"type":"device","name":%q,"version":"rev3"}]},`+
			`{"type":"firmware","name":"bootloader","version":"2.%d.0"},`+
			`{"type":"library","name":"openssl","group":"org.openssl","version":"3.0.%d","purl":"pkg:generic/openssl@3.0.%d"}]}`,
			m, m%3, mcu, m%4, 10+m%5, 10+m%5)
	}
	return boms
}

// benchDevice is device number i of the benchmark fleet.
func benchDevice(i int, boms [][]byte, at time.Time) *fleet.Device {
	m := i % benchModels
	pick := (i * 7919) % 1000
	state := benchStates[0].state
	for _, s := range benchStates {
		if pick < s.per {
			state = s.state
			break
		}
		pick -= s.per
	}
	d := &fleet.Device{
		Identity: fleet.Identity{
			Serial:           fmt.Sprintf("SN-m%02d-%08d", m, i),
			Model:            fmt.Sprintf("m%02d", m),
			HardwareRevision: "r" + strconv.Itoa(m%3),
			Factory:          "f" + strconv.Itoa(i/200_000),
			Batch:            fmt.Sprintf("b%06d", i/1000),
		},
		Manufacturing: fleet.Manufacturing{
			BOM: boms[m],
			QC:  []fleet.QCResult{{Test: "rf-power", Result: "pass", Station: "qc-" + strconv.Itoa(i%8), At: at}},
		},
		Provisioning: fleet.Provisioning{
			Firmware: []fleet.FirmwareVersion{{Component: "main", Version: fmt.Sprintf("1.%d.%d", i%5, i%2)}},
			Security: fleet.SecurityMeasures{KeyType: "ecdsa-p256", KeyStorage: fleet.KeyStorageSecureElement, SecureBoot: true},
		},
		Inventory: fleet.Inventory{
			Groups: []string{fmt.Sprintf("site-%03d", (i/37)%100)},
			Tags:   []string{"line-" + strconv.Itoa(i%4)},
		},
		Lifecycle:  fleet.Lifecycle{State: state},
		Attributes: map[string]string{"fw": fmt.Sprintf("1.%d.%d", i%5, i%2), "region": fmt.Sprintf("r%d", (i/1000)%8)},
	}
	if i%3 != 0 {
		d.Inventory.Owner = fmt.Sprintf("customer-%04d", (i/100)%5000)
	}
	if i%10 == 0 {
		d.Inventory.Tags = append(d.Inventory.Tags, "pilot")
	}
	return d
}

func TestBenchRegistry(t *testing.T) {
	if os.Getenv("MUSTER_BENCH") != "1" {
		t.Skip("MUSTER_BENCH not set: registry benchmarks skipped")
	}
	n := 1_000_000
	if v := os.Getenv("MUSTER_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, u string) {
		stats := &batchStats{}
		s, err := Open(t.Context(), Config{URL: u, Logger: slog.New(stats)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if have := countAll(t, s, "devices"); have > 0 {
			t.Logf("INSERT %s: skipped, reusing %d devices", s.Backend(), have)
		} else {
			benchInsert(t, s, n)
			t.Logf("INSERT %s: writer waited %v for preparation in %d batches", s.Backend(), stats.waited.Round(time.Millisecond), stats.batches)
		}
		if os.Getenv("MUSTER_BENCH_LIST") != "0" {
			benchList(t, s)
		}
		if os.Getenv("MUSTER_BENCH_COUNT") != "0" {
			benchCount(t, s)
		}
	}
	// MUSTER_BENCH_REUSE=DIR keeps the loaded fleet (SQLite in DIR, PostgreSQL
	// in schema muster_bench) and reuses it on the next run, to iterate on
	// queries without reloading.
	if dir := os.Getenv("MUSTER_BENCH_REUSE"); dir != "" {
		t.Run("sqlite", func(t *testing.T) { run(t, "sqlite://"+filepath.Join(dir, "muster.db")) })
		t.Run("postgres", func(t *testing.T) { run(t, pgBenchURL(t)) })
		return
	}
	forEachBackendURL(t, run)
}

func benchInsert(t *testing.T, s *Store, n int) {
	ctx := t.Context()
	boms := benchBOMs()
	at := time.Now().UTC()
	// MUSTER_BENCH_WRITERS callers share the batches, as concurrent
	// API requests or import jobs would.
	writers := 1
	if v := os.Getenv("MUSTER_BENCH_WRITERS"); v != "" {
		var err error
		if writers, err = strconv.Atoi(v); err != nil || writers < 1 {
			t.Fatalf("MUSTER_BENCH_WRITERS=%q", v)
		}
	}
	var next atomic.Int64
	var inStore atomic.Int64
	cpu0, pg0 := cpuTime(), postgresCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				lo := int(next.Add(benchBatch) - benchBatch)
				if lo >= n {
					return
				}
				ds := make([]*fleet.Device, 0, benchBatch)
				for i := lo; i < min(lo+benchBatch, n); i++ {
					ds = append(ds, benchDevice(i, boms, at))
				}
				t0 := time.Now()
				if _, err := s.CreateDevices(ctx, ds, "bench"); err != nil {
					t.Errorf("CreateDevices at %d: %v", lo, err)
					return
				}
				inStore.Add(int64(time.Since(t0)))
				if (lo/benchBatch)%40 == 39 {
					t.Logf("%s: %d devices after %v", s.Backend(), lo+benchBatch, time.Since(start).Round(time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	elapsed := time.Since(start)
	t.Logf("INSERT %s: %d devices in %v by %d writers (%v inside CreateDevices), %.0f devices/s, peak RSS %s, process CPU %v, PostgreSQL server CPU %v, GOMAXPROCS %d",
		s.Backend(), n, elapsed.Round(time.Millisecond), writers, time.Duration(inStore.Load()).Round(time.Millisecond),
		float64(n)/elapsed.Seconds(), vmHWM(t), (cpuTime() - cpu0).Round(time.Millisecond),
		(postgresCPU() - pg0).Round(time.Millisecond), runtime.GOMAXPROCS(0))
	t0 := time.Now()
	if err := s.Optimize(ctx); err != nil {
		t.Fatalf("Optimize: %v", err)
	}
	t.Logf("Optimize %s: %v", s.Backend(), time.Since(t0).Round(time.Millisecond))
}

// benchQuery is one kind of list request; args varies it per run.
type benchQuery struct {
	name  string
	pages int // pages to follow per run
	make  func(r *rand.Rand) DeviceFilter
}

func benchList(t *testing.T, s *Store) {
	ctx := t.Context()
	queries := []benchQuery{
		{"none", 1, func(*rand.Rand) DeviceFilter { return DeviceFilter{} }},
		{"state common", 3, func(*rand.Rand) DeviceFilter { return DeviceFilter{State: fleet.StateActive} }},
		{"state rare", 3, func(*rand.Rand) DeviceFilter { return DeviceFilter{State: fleet.StateRejected} }},
		{"model", 3, func(r *rand.Rand) DeviceFilter { return DeviceFilter{Model: fmt.Sprintf("m%02d", r.IntN(benchModels))} }},
		{"factory", 1, func(r *rand.Rand) DeviceFilter { return DeviceFilter{Factory: fmt.Sprintf("f%d", r.IntN(5))} }},
		{"batch", 1, func(r *rand.Rand) DeviceFilter { return DeviceFilter{Batch: fmt.Sprintf("b%06d", r.IntN(1000))} }},
		{"owner", 1, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{Owner: fmt.Sprintf("customer-%04d", r.IntN(5000))}
		}},
		{"group", 3, func(r *rand.Rand) DeviceFilter { return DeviceFilter{Group: fmt.Sprintf("site-%03d", r.IntN(100))} }},
		{"tag", 3, func(r *rand.Rand) DeviceFilter { return DeviceFilter{Tag: "pilot"} }},
		{"attr", 3, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{Attributes: map[string]string{"fw": fmt.Sprintf("1.%d.%d", r.IntN(5), r.IntN(2))}}
		}},
		{"attr x2", 3, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{Attributes: map[string]string{"fw": fmt.Sprintf("1.%d.%d", r.IntN(5), r.IntN(2)), "region": fmt.Sprintf("r%d", r.IntN(8))}}
		}},
		{"serial prefix narrow", 1, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{SerialPrefix: fmt.Sprintf("SN-m%02d-%05d", r.IntN(benchModels), r.IntN(10000))}
		}},
		{"serial prefix wide", 3, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{SerialPrefix: fmt.Sprintf("SN-m%02d-", r.IntN(benchModels))}
		}},
		{"component", 3, func(*rand.Rand) DeviceFilter { return DeviceFilter{Component: "esp32"} }},
		{"combined state+model+group", 1, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{State: fleet.StateActive, Model: fmt.Sprintf("m%02d", r.IntN(benchModels)), Group: fmt.Sprintf("site-%03d", r.IntN(100))}
		}},
		{"combined factory+attr+component", 1, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{Factory: fmt.Sprintf("f%d", r.IntN(5)), Attributes: map[string]string{"region": fmt.Sprintf("r%d", r.IntN(8))}, Component: "esp32"}
		}},
		{"combined state+tag+serial", 1, func(r *rand.Rand) DeviceFilter {
			return DeviceFilter{State: fleet.StateProvisioned, Tag: "pilot", SerialPrefix: fmt.Sprintf("SN-m%02d-", r.IntN(benchModels))}
		}},
	}
	const runs = 100
	r := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for _, q := range queries {
		var lat []time.Duration
		found := 0
		for range runs {
			f := q.make(r)
			cursor := ""
			for range q.pages {
				t0 := time.Now()
				page, next, err := s.ListDevices(ctx, f, cursor, DefaultPageSize)
				lat = append(lat, time.Since(t0))
				if err != nil {
					t.Fatalf("%s: %v", q.name, err)
				}
				found += len(page)
				if next == "" {
					break
				}
				cursor = next
			}
		}
		all = append(all, lat...)
		p50, p99, worst := percentiles(lat)
		t.Logf("LIST %s %-34s p50 %8v  p99 %8v  max %8v  (%d requests, %.0f devices/request)",
			s.Backend(), q.name, p50, p99, worst, len(lat), float64(found)/float64(len(lat)))
	}
	p50, p99, worst := percentiles(all)
	t.Logf("LIST %s %-34s p50 %8v  p99 %8v  max %8v  (%d requests)", s.Backend(), "ALL", p50, p99, worst, len(all))
}

func percentiles(d []time.Duration) (p50, p99, worst time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(10 * time.Microsecond)
	}
	return at(0.50), at(0.99), s[len(s)-1].Round(10 * time.Microsecond)
}

// pgBenchURL is the URL of the schema muster_bench, created if need be and
// kept after the test.
func pgBenchURL(t *testing.T) string {
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skip(pgSkip)
	}
	admin := pgAdmin(t, base)
	defer admin.Close()
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA IF NOT EXISTS muster_bench"); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "muster_bench")
	u.RawQuery = q.Encode()
	return u.String()
}

// batchStats sums what CreateDevices logs about each batch.
type batchStats struct {
	mu      sync.Mutex
	batches int
	waited  time.Duration
}

func (*batchStats) Enabled(context.Context, slog.Level) bool { return true }
func (b *batchStats) WithAttrs([]slog.Attr) slog.Handler     { return b }
func (b *batchStats) WithGroup(string) slog.Handler          { return b }
func (b *batchStats) Handle(_ context.Context, r slog.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "waitedForPreparation" {
			b.batches++
			b.waited += a.Value.Duration()
		}
		return true
	})
	return nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time used so far by every process named postgres
// on this machine (all of them, not only this benchmark's).
func postgresCPU() time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "(postgres)") {
			continue
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		// After the command: state is field 3, utime 14 and stime 15.
		if len(f) > 13 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

// vmHWM is the process's peak resident set size, from /proc.
func vmHWM(t *testing.T) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
