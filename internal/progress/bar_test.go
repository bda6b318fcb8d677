package progress

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func TestPlainLines(t *testing.T) {
	clock := newClock()
	var out bytes.Buffer
	b := New(&out, 1000, Options{Now: clock.now}) // a bytes.Buffer is not a terminal
	for i := range 100 {
		b.Add(i%50 != 0) // two errors
	}
	if out.Len() != 0 {
		t.Fatalf("printed before the interval: %q", out.String())
	}
	clock.advance(5 * time.Second)
	b.Add(true)
	b.Add(true) // within the interval of the line just printed
	clock.advance(4 * time.Second)
	b.Add(true)
	want := "101/1,000 rows, 10%, 20 rows/s, ETA 0:44, 2 errors\n"
	if out.String() != want {
		t.Fatalf("output = %q, want %q", out.String(), want)
	}
	clock.advance(1 * time.Second)
	b.Set(500, 7)
	want += "500/1,000 rows, 50%, 50 rows/s, ETA 0:10, 7 errors\n"
	if out.String() != want {
		t.Fatalf("output = %q, want %q", out.String(), want)
	}
	clock.advance(2 * time.Second)
	b.Set(1000, 7)
	b.Finish()
	b.Finish()
	b.Add(true)
	want += "1,000/1,000 rows in 0:12, 83 rows/s, 7 errors\n"
	if out.String() != want {
		t.Fatalf("output = %q, want %q", out.String(), want)
	}
}

func TestPlainShortJobPrintsOnlyTheFinalLine(t *testing.T) {
	clock := newClock()
	var out bytes.Buffer
	b := New(&out, 0, Options{Now: clock.now, Unit: "devices", PlainInterval: time.Minute})
	for range 3 {
		clock.advance(10 * time.Second)
		b.Add(true)
	}
	b.Add(false)
	b.Finish()
	if want := "4 devices in 0:30, 0.1 devices/s, 1 error\n"; out.String() != want {
		t.Fatalf("output = %q, want %q", out.String(), want)
	}
}

func TestBar(t *testing.T) {
	clock := newClock()
	var out bytes.Buffer
	b := New(&out, 20_000, Options{Now: clock.now, Mode: ModeBar, Width: 80})
	b.Add(true) // the first update draws at once
	frames := strings.Split(out.String(), "\r")
	if len(frames) != 2 || frames[0] != "" {
		t.Fatalf("output = %q, want one frame after a carriage return", out.String())
	}
	if want := "1/20,000 rows ["; !strings.HasPrefix(frames[1], want) || !strings.Contains(frames[1], "] 0%  0.0 rows/s  ETA --:--  0 errors") {
		t.Errorf("first frame = %q", frames[1])
	}
	for range 99 {
		b.Add(true)
	}
	if n := strings.Count(out.String(), "\r"); n != 1 {
		t.Fatalf("redrew %d times within the interval", n)
	}
	clock.advance(150 * time.Millisecond)
	b.Set(5000, 3)
	frame := lastFrame(out.String())
	want := "5,000/20,000 rows [=====>              ] 25%  33,333 rows/s  ETA 0:00  3 errors"
	if frame != want || len(frame) != 79 { // the bar fills the width
		t.Errorf("frame = %q\n   want %q", frame, want)
	}
	clock.advance(10 * time.Second)
	b.Set(20_000, 3)
	b.Finish()
	if !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("output does not end with exactly one newline: %q", out.String())
	}
	// The final line is shorter than the bar: the rest is blanked.
	final := strings.TrimSuffix(lastFrame(out.String()), "\n")
	if strings.TrimRight(final, " ") != "20,000/20,000 rows in 0:10, 1,970 rows/s, 3 errors" || len(final) != len(want) {
		t.Errorf("final frame = %q", final)
	}
}

func lastFrame(s string) string { return s[strings.LastIndex(s, "\r")+1:] }

func TestBarUnknownTotalAndNarrowTerminal(t *testing.T) {
	clock := newClock()
	var out bytes.Buffer
	b := New(&out, 0, Options{Now: clock.now, Mode: ModeBar, Width: 60})
	clock.advance(61 * time.Minute)
	b.Set(12_345_678, 0)
	if want := "12,345,678 rows  3,373 rows/s  1:01:00 elapsed  0 errors"; lastFrame(out.String()) != want {
		t.Errorf("frame = %q, want %q", lastFrame(out.String()), want)
	}

	out.Reset()
	b = New(&out, 1_000_000, Options{Now: clock.now, Mode: ModeBar, Width: 40})
	clock.advance(time.Second)
	b.Set(10, 1)
	frame := lastFrame(out.String())
	if len(frame) > 39 || strings.Contains(frame, "[") || !strings.HasPrefix(frame, "10/1,000,000 rows  0%") {
		t.Errorf("narrow frame = %q (%d columns)", frame, len(frame))
	}
}

func TestConcurrentAdds(t *testing.T) {
	clock := newClock()
	var out syncBuffer
	b := New(&out, 0, Options{Now: clock.now, Mode: ModeBar, Interval: time.Nanosecond})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				clock.advance(time.Microsecond)
				b.Add(i%100 != g)
			}
		})
	}
	wg.Wait()
	b.Finish()
	if !strings.Contains(lastFrame(out.String()), "8,000 rows in 0:00") || !strings.Contains(out.String(), "80 errors") {
		t.Errorf("final frame = %q", lastFrame(out.String()))
	}
}

// syncBuffer is a bytes.Buffer safe for the race detector's eyes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, out := range map[string]any{"buffer": &bytes.Buffer{}, "pipe": w, "file": f} {
		if isTerminal(out.(interface{ Write([]byte) (int, error) })) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is not taken for a terminal")
		}
	}
}

func TestWidthFromEnv(t *testing.T) {
	t.Setenv("COLUMNS", "132")
	if w := widthFromEnv(); w != 132 {
		t.Errorf("width = %d, want 132", w)
	}
	t.Setenv("COLUMNS", "wide")
	if w := widthFromEnv(); w != DefaultWidth {
		t.Errorf("width = %d, want %d", w, DefaultWidth)
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0:00", 59900 * time.Millisecond: "0:59", 61 * time.Second: "1:01",
		3*time.Hour + 2*time.Minute + 1*time.Second: "3:02:01", -time.Second: "0:00"} {
		if got := clock(d); got != want {
			t.Errorf("clock(%v) = %q, want %q", d, got, want)
		}
	}
	for frac, want := range map[float64]string{0: "[>         ]", 0.55: "[=====>    ]", 1: "[==========]"} {
		if got := drawBar(frac, 10); got != want {
			t.Errorf("drawBar(%v) = %q, want %q", frac, got, want)
		}
	}
	// More done than expected: capped at 100%, ETA nothing left.
	s := snapshot{done: 150, total: 100, elapsed: time.Second}
	if got := s.plainLine("rows"); got != "150/100 rows, 100%, 150 rows/s, ETA 0:00, 0 errors" {
		t.Errorf("over-full line = %q", got)
	}
}
