package client

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
)

// TestBenchBatchEndToEnd submits a 100,000-device csr-mode batch the way
// `muster mfg batch submit` does: streamed over TLS to the real API on
// SQLite, every result read as it arrives. The goal is under 30 s.
// It runs only when asked:
//
//	MUSTER_BENCH=1 go test -run TestBenchBatchEndToEnd -v -timeout 20m ./client/
//
// MUSTER_BENCH_ROWS sets the batch size; MUSTER_BENCH_FILES=1 also writes
// every result to an output directory as the CLI does (a file per
// certificate, which on some file systems costs more than the batch).
func TestBenchBatchEndToEnd(t *testing.T) {
	if os.Getenv("MUSTER_BENCH") != "1" {
		t.Skip("MUSTER_BENCH not set: end-to-end batch benchmark skipped")
	}
	n := 100_000
	if v := os.Getenv("MUSTER_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	r := startRealAPI(t)
	ctx := context.Background()
	if _, err := r.admin.CreateFactory(ctx, FactoryRequest{Name: "acme", Models: []string{"sensor-x"}, SerialPattern: "SN-[0-9]{6}"}); err != nil {
		t.Fatal(err)
	}
	var manifest bytes.Buffer
	genStart := time.Now()
	if err := mfg.GenerateManifest(&manifest, mfg.GenerateOptions{Model: "sensor-x", Count: n, WithCSR: true}); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d device keys and CSRs (%d MiB of CSV) in %v", n, manifest.Len()>>20, time.Since(genStart).Round(time.Millisecond))

	var sum BatchSummary
	onResult := func(r BatchResult) error {
		sum.Add(r)
		return nil
	}
	files := os.Getenv("MUSTER_BENCH_FILES") == "1"
	var out *mfg.OutWriter
	if files {
		var err error
		if out, err = mfg.NewOutWriter(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		onResult = out.Write
	}
	start, cpu0 := time.Now(), cpuTime(t)
	report, err := r.admin.SubmitBatch(ctx, "acme", &manifest, BatchOptions{Format: FormatCSV}, onResult)
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	if files {
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("every certificate written to its own file, as the CLI does")
	}
	elapsed, cpu := time.Since(start), cpuTime(t)-cpu0
	if report.Summary.OK != n {
		t.Fatalf("summary %+v", report.Summary)
	}
	cores := runtime.GOMAXPROCS(0)
	t.Logf("GOMAXPROCS=%d: %d devices registered and certified end to end in %v (%.0f devices/s; server %v); goal < 30s",
		cores, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), report.Summary.Elapsed.Round(time.Millisecond))
	// On a machine shared with other work the wall clock measures the
	// neighbours too; the CPU time the batch took does not.
	t.Logf("CPU time %v (%v per device, client and server): %v on %d idle cores",
		cpu.Round(time.Millisecond), (cpu / time.Duration(n)).Round(time.Microsecond), (cpu / time.Duration(cores)).Round(time.Millisecond), cores)
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
