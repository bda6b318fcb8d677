package region

import (
	"testing"
	"time"
)

func TestHysteresisStep(t *testing.T) {
	h := DefaultHysteresis // 20%, 10 ms, 3 reports
	type report struct {
		medians map[string]float64
		want    Streak
		move    bool
	}
	for _, tc := range []struct {
		name    string
		reports []report
	}{
		{"consistently better moves on the third report", []report{
			{map[string]float64{"eu": 100, "us": 50}, Streak{"us", 1}, false},
			{map[string]float64{"eu": 100, "us": 60}, Streak{"us", 2}, false},
			{map[string]float64{"eu": 100, "us": 55}, Streak{"us", 3}, true},
		}},
		{"20% but not 10 ms is not enough", []report{
			{map[string]float64{"eu": 40, "us": 31}, Streak{}, false},
		}},
		{"10 ms but not 20% is not enough", []report{
			{map[string]float64{"eu": 100, "us": 85}, Streak{}, false},
		}},
		{"a report in between breaks the streak", []report{
			{map[string]float64{"eu": 100, "us": 50}, Streak{"us", 1}, false},
			{map[string]float64{"eu": 100, "us": 95}, Streak{}, false},
			{map[string]float64{"eu": 100, "us": 50}, Streak{"us", 1}, false},
		}},
		{"another better region starts its own streak", []report{
			{map[string]float64{"eu": 100, "us": 50, "ap": 70}, Streak{"us", 1}, false},
			{map[string]float64{"eu": 100, "us": 80, "ap": 40}, Streak{"ap", 1}, false},
		}},
		{"a report without home's median is no evidence", []report{
			{map[string]float64{"eu": 100, "us": 50}, Streak{"us", 1}, false},
			{map[string]float64{"us": 50}, Streak{"us", 1}, false},
			{map[string]float64{"eu": 100, "us": 50}, Streak{"us", 2}, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Streak
			for i, r := range tc.reports {
				next, move := h.Step("eu", r.medians, s)
				if next != r.want || move != r.move {
					t.Fatalf("report %d: %+v, %v; want %+v, %v", i+1, next, move, r.want, r.move)
				}
				s = next
			}
		})
	}
	if s := ParseStreak(Streak{"us-east", 2}.String()); s != (Streak{"us-east", 2}) {
		t.Errorf("streak round trip: %+v", s)
	}
	for _, bad := range []string{"", "us", "us:x", ":3", "us:-1"} {
		if s := ParseStreak(bad); s != (Streak{}) {
			t.Errorf("ParseStreak(%q) = %+v", bad, s)
		}
	}
}

func TestParseHysteresis(t *testing.T) {
	h, err := ParseHysteresis("25%/5ms/4")
	if err != nil || h != (Hysteresis{Ratio: 0.25, Margin: 5 * time.Millisecond, Reports: 4}) {
		t.Fatalf("ParseHysteresis = %+v, %v", h, err)
	}
	if got, err := ParseHysteresis(DefaultHysteresis.String()); err != nil || got != DefaultHysteresis {
		t.Errorf("default round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "20%/10ms", "120%/10ms/3", "20%/-1ms/3", "20%/10ms/0", "x/10ms/3"} {
		if _, err := ParseHysteresis(bad); err == nil {
			t.Errorf("ParseHysteresis(%q) accepted", bad)
		}
	}
}
