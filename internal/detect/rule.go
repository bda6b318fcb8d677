package detect

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kind is how a rule decides that a datapoint breaches.
type Kind string

// Rule kinds.
const (
	// KindStatic compares the metric with a fixed Value.
	KindStatic Kind = "static"
	// KindDevice compares the metric with Factor times a percentile of
	// the same device's own history of it (never below Min).
	KindDevice Kind = "device"
	// KindFleet compares the metric with Factor times a percentile of the
	// metric over the device's cohort (its model), never below Min.
	KindFleet Kind = "fleet"
	// KindAnomaly compares the multi-metric anomaly score of a datapoint
	// set with Value.
	KindAnomaly Kind = "anomaly"
	// KindIntel fires when a source or destination address, or a domain
	// name a device reported, matches a threat-intelligence indicator.
	KindIntel Kind = "intel"
	// KindFirmware fires when a device reports a firmware version lower
	// than one it reported before.
	KindFirmware Kind = "firmware"
)

var kinds = []Kind{KindStatic, KindDevice, KindFleet, KindAnomaly, KindIntel, KindFirmware}

// Severity ranks alerts.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Severities lists the severities, lowest first.
var Severities = []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Rank orders severities: 1 for low up to 4 for critical, 0 if unknown.
func (s Severity) Rank() int { return slices.Index(Severities, s) + 1 }

// Action is a mitigation a rule can take on the device that breached it.
// "group:NAME" adds the device to inventory group NAME.
type Action string

// Mitigations.
const (
	ActionQuarantine Action = "quarantine"
	ActionSuspend    Action = "suspend"
	ActionRevoke     Action = "revoke"
	ActionRotate     Action = "rotate"
	// ActionGroupPrefix starts "group:NAME".
	ActionGroupPrefix = "group:"
)

// Group is the group an add-to-group action names, or "".
func (a Action) Group() string {
	g, ok := strings.CutPrefix(string(a), ActionGroupPrefix)
	if !ok {
		return ""
	}
	return g
}

// ValidateAction checks one action.
func ValidateAction(a Action) error {
	switch a {
	case ActionQuarantine, ActionSuspend, ActionRevoke, ActionRotate:
		return nil
	}
	if g := a.Group(); g != "" {
		if !namePattern.MatchString(g) {
			return fmt.Errorf("action %q: a group name is letters, digits, '.', '_' and '-'", a)
		}
		return nil
	}
	return fmt.Errorf("unknown action %q: use quarantine, suspend, revoke, rotate or group:NAME", a)
}

// Operators a rule compares with.
const (
	OpGreater      = ">"
	OpGreaterEqual = ">="
	OpLess         = "<"
	OpLessEqual    = "<="
)

// Rule is one detection rule. See docs/detection.md for the semantics of
// each field.
type Rule struct {
	ID          string   `json:"id"`
	Description string   `json:"description,omitempty"`
	Kind        Kind     `json:"kind"`
	Metric      string   `json:"metric,omitempty"`
	Op          string   `json:"op,omitempty"`
	Value       float64  `json:"value,omitempty"`
	Percentile  float64  `json:"percentile,omitempty"`
	Factor      float64  `json:"factor,omitempty"`
	Min         float64  `json:"min,omitempty"`
	Duration    Duration `json:"duration,omitempty"`
	Consecutive int      `json:"consecutive,omitempty"`
	Severity    Severity `json:"severity"`
	Actions     []Action `json:"actions,omitempty"`
	// Auto applies Actions as soon as the rule fires; otherwise they are
	// suggested on the alert and an operator applies them.
	Auto     bool `json:"auto,omitempty"`
	Disabled bool `json:"disabled,omitempty"`
}

// Duration is a time.Duration written as "5m" in JSON.
type Duration time.Duration

// MarshalText writes d as Go duration text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go duration text such as "15m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: write it like 5m or 1h", b)
	}
	*d = Duration(v)
	return nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Percentiles are the percentiles statistical rules may use.
var Percentiles = []float64{50, 90, 95, 99, 99.9}

// Validate checks r and fills in defaults (operator ">", factor 1,
// consecutive 1). The error names the field and what to write.
func (r *Rule) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !namePattern.MatchString(r.ID) {
		bad("id %q: use 1-64 letters, digits, '.', '_' and '-'", r.ID)
	}
	if !slices.Contains(kinds, r.Kind) {
		bad("kind %q: use one of static, device, fleet, anomaly, intel, firmware", r.Kind)
	}
	if r.Severity.Rank() == 0 {
		bad("severity %q: use low, medium, high or critical", r.Severity)
	}
	if r.Op == "" {
		r.Op = OpGreater
	}
	if !slices.Contains([]string{OpGreater, OpGreaterEqual, OpLess, OpLessEqual}, r.Op) {
		bad("op %q: use >, >=, < or <=", r.Op)
	}
	if r.Factor == 0 {
		r.Factor = 1
	}
	if r.Consecutive == 0 {
		r.Consecutive = 1
	}
	switch {
	case r.Consecutive < 0 || r.Consecutive > 1000:
		bad("consecutive %d: use 1 to 1000 datapoints", r.Consecutive)
	case r.Factor < 0:
		bad("factor %v: must not be negative", r.Factor)
	case r.Duration < 0 || time.Duration(r.Duration) > 7*24*time.Hour:
		bad("duration %s: use 0 (each datapoint) up to 168h", time.Duration(r.Duration))
	}
	switch r.Kind {
	case KindStatic, KindDevice, KindFleet:
		if !validMetric(r.Metric) {
			bad("metric %q: name a gateway metric (%s), a report metric (report.…) or custom.NAME", r.Metric, strings.Join(GatewayMetrics, ", "))
		}
	case KindAnomaly:
		if r.Value <= 0 {
			bad("value %v: an anomaly rule needs a positive score threshold", r.Value)
		}
		fallthrough
	default:
		if r.Metric != "" {
			bad("metric: a %s rule takes no metric", r.Kind)
		}
	}
	if r.Kind == KindDevice || r.Kind == KindFleet {
		if !slices.Contains(Percentiles, r.Percentile) {
			bad("percentile %v: use one of 50, 90, 95, 99, 99.9", r.Percentile)
		}
	} else if r.Percentile != 0 {
		bad("percentile: only device and fleet rules take a percentile")
	}
	for _, a := range r.Actions {
		if err := ValidateAction(a); err != nil {
			bad("actions: %v", err)
		}
	}
	if r.Auto && len(r.Actions) == 0 {
		bad("auto: name the actions to apply automatically")
	}
	return errors.Join(errs...)
}

// breaches compares v with threshold by the rule's operator.
func (r *Rule) breaches(v, threshold float64) bool {
	switch r.Op {
	case OpGreaterEqual:
		return v >= threshold
	case OpLess:
		return v < threshold
	case OpLessEqual:
		return v <= threshold
	}
	return v > threshold
}

// DefaultRules are the rules a new installation starts with. They are
// tuned on the labelled synthetic fleet (internal/detect/synth), where
// they detect every attack scenario and flag well under 1% of normal
// devices a day; docs/detection.md explains each.
func DefaultRules() []Rule {
	return []Rule{
		{ID: "intel-match", Kind: KindIntel, Severity: SeverityCritical,
			Description: "A source or destination address, or a reported domain name, matches a threat-intelligence indicator",
			Actions:     []Action{ActionQuarantine}, Auto: true},
		{ID: "port-scan", Kind: KindDevice, Metric: MetricReportDestinations, Percentile: 99.9, Factor: 3, Min: 20, Severity: SeverityHigh,
			Description: "Many more distinct destination addresses than the device ever contacts (Mirai-like scanning)",
			Actions:     []Action{ActionQuarantine}, Auto: true},
		{ID: "new-listening-port", Kind: KindDevice, Metric: MetricReportListening, Percentile: 99.9, Factor: 1, Severity: SeverityHigh,
			Description: "The device listens on more ports than it ever did", Actions: []Action{ActionQuarantine}},
		{ID: "exfiltration", Kind: KindDevice, Metric: MetricReportBytesOut, Percentile: 99.9, Factor: 4, Min: 1 << 20, Consecutive: 2, Severity: SeverityHigh,
			Description: "The device sends several times more than its own highest traffic, for two reports in a row",
			Actions:     []Action{ActionQuarantine}},
		{ID: "auth-failures", Kind: KindStatic, Metric: MetricAuthFailures, Value: 20, Severity: SeverityMedium,
			Description: "More than 20 refused connections, publishes or subscriptions in a window (credential brute force)",
			Actions:     []Action{ActionRotate}},
		{ID: "certificate-clone", Kind: KindStatic, Metric: MetricSourceIPs, Op: OpGreaterEqual, Value: 2, Consecutive: 3, Severity: SeverityHigh,
			Description: "The device's certificate connects from two or more addresses in three windows in a row",
			Actions:     []Action{ActionRevoke, ActionRotate}},
		{ID: "firmware-downgrade", Kind: KindFirmware, Severity: SeverityHigh,
			Description: "The device reports a firmware version lower than one it ran before",
			Actions:     []Action{ActionQuarantine}},
		{ID: "reconnect-storm", Kind: KindFleet, Metric: MetricConnects, Percentile: 99.9, Factor: 5, Min: 12, Severity: SeverityMedium,
			Description: "Far more connections in a window than almost any device of the same model"},
		{ID: "anomaly", Kind: KindAnomaly, Value: 25, Consecutive: 3, Severity: SeverityLow,
			Description: "Several metrics far outside the device's own baseline, three windows in a row"},
	}
}
