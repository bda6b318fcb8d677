package progress

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// snapshot is the state of a job at one moment, and how it is written.
type snapshot struct {
	done, errors, total int64
	elapsed             time.Duration
}

// Bar widths, in columns, inside the brackets.
const (
	minBarWidth = 10
	maxBarWidth = 40
)

func (s snapshot) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.done) / s.elapsed.Seconds()
}

// fraction is the part done, capped at 1; only meaningful with a total.
func (s snapshot) fraction() float64 {
	if s.total <= 0 {
		return 0
	}
	return min(float64(s.done)/float64(s.total), 1)
}

// eta is the expected time left at the average rate so far; ok is false
// while it cannot be estimated.
func (s snapshot) eta() (time.Duration, bool) {
	rate := s.rate()
	if s.total <= 0 || rate <= 0 {
		return 0, false
	}
	left := max(s.total-s.done, 0)
	return time.Duration(float64(left) / rate * float64(time.Second)), true
}

// count is "done/total unit", or "done unit" when the total is unknown.
func (s snapshot) count(unit string) string {
	if s.total <= 0 {
		return groupDigits(s.done) + " " + unit
	}
	return groupDigits(s.done) + "/" + groupDigits(s.total) + " " + unit
}

// stats are the parts after the count: percent, rate, ETA or elapsed time,
// and errors.
func (s snapshot) stats(unit string) []string {
	var parts []string
	if s.total > 0 {
		parts = append(parts, fmt.Sprintf("%d%%", int(s.fraction()*100)))
	}
	parts = append(parts, formatRate(s.rate())+" "+unit+"/s")
	if s.total > 0 {
		eta, ok := s.eta()
		if ok {
			parts = append(parts, "ETA "+clock(eta))
		} else {
			parts = append(parts, "ETA --:--")
		}
	} else {
		parts = append(parts, clock(s.elapsed)+" elapsed")
	}
	return append(parts, plural(s.errors, "error"))
}

// plainLine is a log line: "1,200/5,000 rows, 24%, 400 rows/s, ETA 0:09, 3 errors".
func (s snapshot) plainLine(unit string) string {
	return s.count(unit) + ", " + strings.Join(s.stats(unit), ", ")
}

// barLine is the terminal line, at most width columns:
// "1,200/5,000 rows [=====>          ] 24%  400 rows/s  ETA 0:09  3 errors".
// The bar takes the room left, within bounds, and goes when there is none.
func (s snapshot) barLine(unit string, width int) string {
	count, stats := s.count(unit), strings.Join(s.stats(unit), "  ")
	line := count + "  " + stats
	if s.total > 0 {
		// The bar's inside is what is left after two spaces and two brackets.
		if inside := width - len(count) - len(stats) - 4; inside >= minBarWidth {
			line = count + " " + drawBar(s.fraction(), min(inside, maxBarWidth)) + " " + stats
		}
	}
	if len(line) > width {
		line = line[:max(width, 0)]
	}
	return line
}

// final is the closing line: "5,000/5,000 rows in 0:12, 416 rows/s, 3 errors".
func (s snapshot) final(unit string) string {
	return fmt.Sprintf("%s in %s, %s %s/s, %s", s.count(unit), clock(s.elapsed), formatRate(s.rate()), unit, plural(s.errors, "error"))
}

// drawBar draws "[====>    ]" with width columns between the brackets.
func drawBar(fraction float64, width int) string {
	fill := int(fraction * float64(width))
	if fill >= width {
		return "[" + strings.Repeat("=", width) + "]"
	}
	return "[" + strings.Repeat("=", fill) + ">" + strings.Repeat(" ", width-fill-1) + "]"
}

// groupDigits writes n with thousands separators: 1234567 is "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatRate shows small rates with a decimal, large ones grouped.
func formatRate(r float64) string {
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return groupDigits(int64(r + 0.5))
}

// clock writes a duration as m:ss, or h:mm:ss from an hour, rounded down to
// the second.
func clock(d time.Duration) string {
	sec := int64(max(d, 0) / time.Second)
	h, m, s := sec/3600, sec/60%60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return groupDigits(n) + " " + word + "s"
}
