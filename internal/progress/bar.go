package progress

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode chooses how progress is shown.
type Mode int

const (
	// ModeAuto draws a bar when the writer is a terminal and prints plain
	// lines otherwise.
	ModeAuto Mode = iota
	// ModeBar always draws a bar redrawn in place with carriage returns.
	ModeBar
	// ModePlain always prints plain lines.
	ModePlain
)

// Defaults for Options.
const (
	DefaultInterval      = 150 * time.Millisecond
	DefaultPlainInterval = 5 * time.Second
	DefaultWidth         = 80
	DefaultUnit          = "rows"
)

// Options tune a Bar. The zero value is ready to use.
type Options struct {
	// Unit names what is counted, in the plural; DefaultUnit when empty.
	Unit string
	Mode Mode
	// Width is the terminal's width in columns. When zero, $COLUMNS is used
	// if set, else DefaultWidth: the width cannot be asked of the terminal
	// without a system call this package avoids.
	Width int
	// Interval is the least time between two redraws of the bar;
	// DefaultInterval when zero.
	Interval time.Duration
	// PlainInterval is the least time between two plain lines;
	// DefaultPlainInterval when zero.
	PlainInterval time.Duration
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
}

// Bar reports the progress of one job. Its methods are safe for concurrent
// use. Write errors are ignored: progress is a courtesy, and must never fail
// the job it reports on.
type Bar struct {
	w        io.Writer
	total    int64
	unit     string
	bar      bool
	width    int
	interval time.Duration
	now      func() time.Time
	start    time.Time

	done   atomic.Int64
	errors atomic.Int64
	// next is the elapsed time, in nanoseconds, before which nothing is
	// drawn; it lets Add skip the lock on almost every call.
	next atomic.Int64

	mu       sync.Mutex // serialises drawing
	drawn    int        // length of the bar line on screen, to blank its tail
	finished bool
}

// New returns a Bar writing to w for a job of total items (0 when unknown).
// The job's clock starts now.
func New(w io.Writer, total int64, opts Options) *Bar {
	b := &Bar{w: w, total: total, unit: opts.Unit, width: opts.Width, now: opts.Now}
	if b.unit == "" {
		b.unit = DefaultUnit
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.width <= 0 {
		b.width = widthFromEnv()
	}
	switch opts.Mode {
	case ModeBar:
		b.bar = true
	case ModeAuto:
		b.bar = isTerminal(w)
	}
	if b.bar {
		b.interval = orDefault(opts.Interval, DefaultInterval)
	} else {
		b.interval = orDefault(opts.PlainInterval, DefaultPlainInterval)
		// A job shorter than the interval prints only its final line.
		b.next.Store(int64(b.interval))
	}
	b.start = b.now()
	return b
}

// Add counts one finished item, an error when ok is false.
func (b *Bar) Add(ok bool) {
	b.done.Add(1)
	if !ok {
		b.errors.Add(1)
	}
	b.tick()
}

// Set replaces the counts, for jobs that report their progress as totals
// (a server-side job polled by a client).
func (b *Bar) Set(done, errors int64) {
	b.done.Store(done)
	b.errors.Store(errors)
	b.tick()
}

// Finish prints the final line. Later calls do nothing, and the Bar draws
// nothing more.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	line := b.snapshot().final(b.unit)
	if b.bar {
		b.redraw(line, "\n")
		return
	}
	io.WriteString(b.w, line+"\n")
}

// tick draws if the interval since the last drawing has passed.
func (b *Bar) tick() {
	if int64(b.now().Sub(b.start)) < b.next.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snapshot()
	if b.finished || int64(s.elapsed) < b.next.Load() {
		return
	}
	b.next.Store(int64(s.elapsed + b.interval))
	if b.bar {
		b.redraw(s.barLine(b.unit, b.width-1), "")
		return
	}
	io.WriteString(b.w, s.plainLine(b.unit)+"\n")
}

// redraw replaces the line on screen, blanking what is left of a longer
// previous line. Called with mu held.
func (b *Bar) redraw(line, end string) {
	pad := max(b.drawn-len(line), 0)
	io.WriteString(b.w, "\r"+line+strings.Repeat(" ", pad)+end)
	b.drawn = len(line)
}

func (b *Bar) snapshot() snapshot {
	return snapshot{done: b.done.Load(), errors: b.errors.Load(), total: b.total, elapsed: b.now().Sub(b.start)}
}

// isTerminal reports whether w is a terminal, by the heuristic that
// terminals are character devices. That needs no system call beyond a stat,
// at the price of treating /dev/null as a terminal (harmless: nobody sees
// it). A pipe, a regular file or a non-file writer is not a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func widthFromEnv() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return DefaultWidth
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
