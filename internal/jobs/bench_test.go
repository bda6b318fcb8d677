package jobs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// TestBenchRegisterJob measures a 1,000,000-row register job end to end on
// SQLite and on PostgreSQL: the manifest streamed in (generated on the fly,
// never held in memory), stored in chunks, then applied by a runner, with
// the process's resident memory sampled throughout. Speed is reported,
// never asserted. Run it with
//
//	MUSTER_BENCH=1 go test -run TestBenchRegisterJob -v -timeout 30m ./internal/jobs/
//
// (add MUSTER_TEST_DATABASE_URL for PostgreSQL; MUSTER_BENCH_ROWS overrides
// the row count).
func TestBenchRegisterJob(t *testing.T) {
	if os.Getenv("MUSTER_BENCH") != "1" {
		t.Skip("MUSTER_BENCH not set: bulk job benchmark skipped")
	}
	rows := 1_000_000
	if v := os.Getenv("MUSTER_BENCH_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "bench", 0, 0)
		n.wait = time.Hour
		rss := sampleRSS()
		cpu0 := cpuTime()

		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeManifest(pw, rows)) }()
		t0 := time.Now()
		j, err := n.svc.Start(context.Background(), registerSpec, pr, mfg.FormatJSONL, "admin/bench")
		if err != nil {
			t.Fatal(err)
		}
		upload := time.Since(t0)
		t1 := time.Now()
		j = n.runUntilFinished(t, j.ID)
		apply := time.Since(t1)
		total := time.Since(t0)
		peak := rss.stop()
		heap := rss.heap.Load()
		cpu := cpuTime() - cpu0
		if j.OK != int64(rows) || j.Errors != 0 {
			t.Fatalf("job: %+v", j)
		}
		if c := countDevices(t, st); c != rows {
			t.Fatalf("%d devices, want %d", c, rows)
		}
		t.Logf("REGISTER JOB %s: %d rows in %v (upload %v, apply %v): %.0f rows/s; peak RSS %d MB (Go heap in use %d MB); process CPU %v",
			st.Backend(), rows, total.Round(time.Millisecond), upload.Round(time.Millisecond), apply.Round(time.Millisecond),
			float64(rows)/total.Seconds(), peak>>20, heap>>20, cpu.Round(time.Millisecond))
	}
	t.Run("sqlite", func(t *testing.T) { run(t, "sqlite://"+filepath.Join(t.TempDir(), "muster.db")) })
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		if u == "" {
			t.Skip("MUSTER_TEST_DATABASE_URL not set")
		}
		run(t, u)
	})
}

// writeManifest writes rows register rows as the kill tests' manifests.
func writeManifest(w io.Writer, rows int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for i := range rows {
		if _, err := fmt.Fprintf(bw, `{"serial":"SN-%07d","owner":"customer-%04d","tags":["t%d"],"attributes":{"fw":"1.%d"}}`+"\n", i, i%5000, i%7, i%3); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// rssSampler records the peak resident memory of this process.
type rssSampler struct {
	peak  atomic.Int64
	heap  atomic.Int64 // peak Go heap in use
	stopc chan struct{}
	wg    sync.WaitGroup
}

func sampleRSS() *rssSampler {
	s := &rssSampler{stopc: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v := currentRSS(); v > s.peak.Load() {
				s.peak.Store(v)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if v := int64(ms.HeapInuse); v > s.heap.Load() {
				s.heap.Store(v)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *rssSampler) stop() int64 {
	close(s.stopc)
	s.wg.Wait()
	return s.peak.Load()
}

// currentRSS reads VmRSS from /proc (Linux); 0 elsewhere.
func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
