package region

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hysteresis says when another region is consistently better than a
// device's home: in Reports consecutive reports, the same other region's
// median is at least Ratio lower than home's AND at least Margin lower.
type Hysteresis struct {
	Ratio   float64       `json:"ratio"`
	Margin  time.Duration `json:"margin"`
	Reports int           `json:"reports"`
}

// DefaultHysteresis is 20% and 10 ms over 3 reports.
var DefaultHysteresis = Hysteresis{Ratio: 0.2, Margin: 10 * time.Millisecond, Reports: 3}

// Validate checks h.
func (h Hysteresis) Validate() error {
	if h.Ratio < 0 || h.Ratio >= 1 || h.Margin < 0 || h.Reports < 1 {
		return fmt.Errorf("hysteresis %s: ratio must be in [0,1), margin not negative, reports at least 1", h)
	}
	return nil
}

func (h Hysteresis) String() string {
	return fmt.Sprintf("%.0f%%/%s/%d", h.Ratio*100, h.Margin, h.Reports)
}

// ParseHysteresis reads "RATIO%/MARGIN/REPORTS", such as "20%/10ms/3".
func ParseHysteresis(s string) (Hysteresis, error) {
	parts := strings.Split(s, "/")
	bad := fmt.Errorf("hysteresis %q: write RATIO%%/MARGIN/REPORTS, such as 20%%/10ms/3", s)
	if len(parts) != 3 {
		return Hysteresis{}, bad
	}
	pct, err1 := strconv.ParseFloat(strings.TrimSuffix(parts[0], "%"), 64)
	margin, err2 := time.ParseDuration(parts[1])
	n, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return Hysteresis{}, bad
	}
	h := Hysteresis{Ratio: pct / 100, Margin: margin, Reports: n}
	if err := h.Validate(); err != nil {
		return Hysteresis{}, err
	}
	return h, nil
}

// Streak is the evidence so far: Region was better than home in Count
// consecutive reports.
type Streak struct {
	Region string
	Count  int
}

// ParseStreak reads AttrStreak's "region:count"; zero for anything else.
func ParseStreak(s string) Streak {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Streak{}
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 0 {
		return Streak{}
	}
	return Streak{Region: s[:i], Count: n}
}

func (s Streak) String() string {
	if s.Count == 0 {
		return ""
	}
	return s.Region + ":" + strconv.Itoa(s.Count)
}

// Step applies one report's medians (by region, enabled regions only) to
// the streak of a device whose home is home. It returns the new streak and
// whether the device moves to the streak's region now. A report without a
// usable median for home is no evidence either way: the streak stays.
func (h Hysteresis) Step(home string, medians map[string]float64, prev Streak) (Streak, bool) {
	hm, ok := medians[home]
	if !ok {
		return prev, false
	}
	cand, _ := lowestLatency(candidates(medians), medians, home)
	cm, ok := medians[cand.Name]
	if !ok || cand.Name == home || !h.better(cm, hm) {
		return Streak{}, false
	}
	next := Streak{Region: cand.Name, Count: 1}
	if prev.Region == cand.Name {
		next.Count = prev.Count + 1
	}
	return next, next.Count >= h.Reports
}

// better: cm beats hm by the ratio and the margin.
func (h Hysteresis) better(cm, hm float64) bool {
	margin := float64(h.Margin) / float64(time.Millisecond)
	return cm <= hm*(1-h.Ratio) && hm-cm >= margin
}

// candidates turns medians into regions for lowestLatency (equal weights:
// ties go to home, then to the first name).
func candidates(medians map[string]float64) []Region {
	out := make([]Region, 0, len(medians))
	for name := range medians {
		out = append(out, Region{Name: name})
	}
	return out
}
