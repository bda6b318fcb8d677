package synth

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/detect"
)

// Fleet configures a labelled fleet.
type Fleet struct {
	Seed uint64
	// Normal devices, and devices per attack scenario.
	Normal, PerAttack int
	// LearnDays pass before any attack starts; attacks start at a random
	// time in the first EvalDays-1 days after that, so each has time to be
	// detected.
	LearnDays, EvalDays int
	// Window defaults to five minutes, the gateway's metering window.
	Window time.Duration
	// Start defaults to 2026-01-05T00:00:00Z.
	Start time.Time
}

// Devices creates the fleet's devices. Attacked devices come after the
// normal ones; all share one model.
func (f *Fleet) Devices() []*Device {
	f.defaults()
	r := rand.New(rand.NewPCG(f.Seed, 7))
	var ds []*Device
	for i := 0; i < f.Normal; i++ {
		ds = append(ds, NewDevice(fmt.Sprintf("normal-%04d", i), "sensor-x", r.Uint64()))
	}
	attackFrom := f.Start.Add(time.Duration(f.LearnDays) * 24 * time.Hour)
	span := time.Duration(max(1, f.EvalDays-1)) * 24 * time.Hour
	for _, sc := range Scenarios {
		for i := 0; i < f.PerAttack; i++ {
			d := NewDevice(fmt.Sprintf("%s-%04d", sc, i), "sensor-x", r.Uint64())
			d.Attack = sc
			d.AttackAt = attackFrom.Add(time.Duration(r.Int64N(int64(span)))).Truncate(f.Window)
			ds = append(ds, d)
		}
	}
	return ds
}

// start is the fleet's first window start.
func (f *Fleet) start() time.Time {
	f.defaults()
	return f.Start
}

func (f *Fleet) defaults() {
	if f.Window <= 0 {
		f.Window = 5 * time.Minute
	}
	if f.Start.IsZero() {
		f.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if f.EvalDays <= 0 {
		f.EvalDays = 2
	}
}

// AttackResult is how well one scenario was detected.
type AttackResult struct {
	Scenario Scenario `json:"scenario"`
	Devices  int      `json:"devices"`
	Detected int      `json:"detected"`
	// Rate is Detected/Devices.
	Rate float64 `json:"rate"`
	// MeanTTD and MaxTTD are the time from the attack's start to the
	// first alert on the device, over detected devices.
	MeanTTD time.Duration `json:"meanTimeToDetect"`
	MaxTTD  time.Duration `json:"maxTimeToDetect"`
	// Rules counts the rules that fired first on the attacked devices.
	Rules map[string]int `json:"rules"`
}

// Result is an evaluation of a rule set on a fleet.
type Result struct {
	Attacks []AttackResult `json:"attacks"`
	// DetectionRate is over all attacked devices.
	DetectionRate float64 `json:"detectionRate"`
	// NormalDeviceDays is normal devices times evaluation days;
	// FlaggedDeviceDays counts those with any alert; FalsePositiveRate
	// is their ratio: the share of normal devices falsely flagged per day.
	NormalDeviceDays  int            `json:"normalDeviceDays"`
	FlaggedDeviceDays int            `json:"flaggedDeviceDays"`
	FalsePositiveRate float64        `json:"falsePositiveRate"`
	FalseRules        map[string]int `json:"falsePositiveRules"`
	Datapoints        int64          `json:"datapoints"`
}

// Evaluate runs the fleet through engine (whose rules and intelligence are
// already set) window by window, and scores the alerts against the labels.
func (f *Fleet) Evaluate(engine *detect.Engine) Result {
	ds := f.Devices()
	reports := detect.NewReports()
	days := f.LearnDays + f.EvalDays
	windows := int(time.Duration(days) * 24 * time.Hour / f.Window)
	evalFrom := f.Start.Add(time.Duration(f.LearnDays) * 24 * time.Hour)
	first := map[string]detect.Finding{}
	flagged := map[string]map[int]bool{}
	falseRules := map[string]int{}
	var n int64
	var buf []detect.Finding
	for k := 0; k < windows; k++ {
		start := f.Start.Add(time.Duration(k) * f.Window)
		for _, d := range ds {
			t := d.Tick(start, f.Window)
			ow := detect.FromWindow(t.Window, d.Model)
			or := reports.Observation(d.ID, d.Model, start.Add(f.Window), t.Report)
			n += int64(len(ow.Values) + len(or.Values))
			buf = engine.Evaluate(&ow, buf[:0])
			buf = engine.Evaluate(&or, buf)
			for _, fd := range buf {
				if fd.At.Before(evalFrom) {
					continue
				}
				if d.Attack == Normal {
					day := int(fd.At.Sub(evalFrom) / (24 * time.Hour))
					if flagged[d.ID] == nil {
						flagged[d.ID] = map[int]bool{}
					}
					if !flagged[d.ID][day] {
						falseRules[fd.RuleID]++
					}
					flagged[d.ID][day] = true
					continue
				}
				if _, ok := first[d.ID]; !ok && !fd.At.Before(d.AttackAt) {
					first[d.ID] = fd
				}
			}
		}
	}
	res := Result{Datapoints: n, FalseRules: falseRules}
	detected, attacked := 0, 0
	for _, sc := range Scenarios {
		ar := AttackResult{Scenario: sc, Rules: map[string]int{}}
		var total time.Duration
		for _, d := range ds {
			if d.Attack != sc {
				continue
			}
			ar.Devices++
			fd, ok := first[d.ID]
			if !ok {
				continue
			}
			ar.Detected++
			ttd := fd.At.Sub(d.AttackAt)
			total += ttd
			ar.MaxTTD = max(ar.MaxTTD, ttd)
			ar.Rules[fd.RuleID]++
		}
		if ar.Devices > 0 {
			ar.Rate = float64(ar.Detected) / float64(ar.Devices)
		}
		if ar.Detected > 0 {
			ar.MeanTTD = total / time.Duration(ar.Detected)
		}
		detected += ar.Detected
		attacked += ar.Devices
		res.Attacks = append(res.Attacks, ar)
	}
	if attacked > 0 {
		res.DetectionRate = float64(detected) / float64(attacked)
	}
	res.NormalDeviceDays = f.Normal * f.EvalDays
	for _, days := range flagged {
		res.FlaggedDeviceDays += len(days)
	}
	if res.NormalDeviceDays > 0 {
		res.FalsePositiveRate = float64(res.FlaggedDeviceDays) / float64(res.NormalDeviceDays)
	}
	return res
}

// Table renders a result as a Markdown table, one row per scenario.
func (r Result) Table() string {
	var b strings.Builder
	b.WriteString("| attack | devices | detected | rate | mean time to detect | max time to detect | first rule |\n|---|---|---|---|---|---|---|\n")
	for _, a := range r.Attacks {
		var rules []string
		for id, n := range a.Rules {
			rules = append(rules, fmt.Sprintf("%s ×%d", id, n))
		}
		sort.Strings(rules)
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f%% | %s | %s | %s |\n", a.Scenario, a.Devices, a.Detected, 100*a.Rate,
			a.MeanTTD.Round(time.Second), a.MaxTTD.Round(time.Second), strings.Join(rules, ", "))
	}
	var fr []string
	for id, n := range r.FalseRules {
		fr = append(fr, fmt.Sprintf("%s ×%d", id, n))
	}
	slices.Sort(fr)
	fmt.Fprintf(&b, "\nDetection rate %.1f%%; normal devices flagged: %d of %d device-days (%.2f%% per day)%s; %d datapoints.\n",
		100*r.DetectionRate, r.FlaggedDeviceDays, r.NormalDeviceDays, 100*r.FalsePositiveRate, ruleList(fr), r.Datapoints)
	return b.String()
}

func ruleList(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	return " by " + strings.Join(rs, ", ")
}
