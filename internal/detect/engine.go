package detect

import (
	"cmp"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLearningSamples is how many datapoints of a metric a baseline
// needs before statistical rules and the anomaly score judge it: a day of
// five-minute metering windows, so the baseline has seen one whole daily
// cycle. Until then the device (or cohort) is "learning".
const DefaultLearningSamples = 288

// IntelMatcher finds the threat-intelligence indicator an address or a
// domain name matches. *intel.Matcher implements it.
type IntelMatcher interface {
	MatchIP(ip netip.Addr) (IntelMatch, bool)
	// MatchDomain matches a lower-case name, or any of its parent
	// domains.
	MatchDomain(name string) (IntelMatch, bool)
}

// IntelMatch is an indicator an address or domain name matched.
type IntelMatch struct {
	Feed      string `json:"feed"`
	Indicator string `json:"indicator"`
	Type      string `json:"type"`
}

// Config configures an Engine.
type Config struct {
	// LearningSamples defaults to DefaultLearningSamples.
	LearningSamples int
	// Span is the memory of the EWMA baselines in datapoints; defaults to
	// LearningSamples.
	Span int
	// Intel, when set, is matched against every address and domain name.
	Intel IntelMatcher
}

// Finding is a rule that fired on a device: what the alert is made of.
type Finding struct {
	RuleID   string    `json:"ruleId"`
	Kind     Kind      `json:"kind"`
	Severity Severity  `json:"severity"`
	DeviceID string    `json:"deviceId"`
	At       time.Time `json:"at"`
	Actions  []Action  `json:"actions,omitempty"`
	Auto     bool      `json:"auto,omitempty"`
	Evidence Evidence  `json:"evidence"`
}

// Evidence is why a rule fired.
type Evidence struct {
	Metric      string  `json:"metric,omitempty"`
	Value       float64 `json:"value,omitempty"`
	Threshold   float64 `json:"threshold,omitempty"`
	Op          string  `json:"op,omitempty"`
	Percentile  float64 `json:"percentile,omitempty"`
	Consecutive int     `json:"consecutive,omitempty"`
	// Score and Contributors explain an anomaly score.
	Score        float64        `json:"score,omitempty"`
	Contributors []Contribution `json:"contributors,omitempty"`
	// Indicator and Address (or Domain) explain an intelligence match.
	Indicator *IntelMatch `json:"indicator,omitempty"`
	Address   string      `json:"address,omitempty"`
	Domain    string      `json:"domain,omitempty"`
	Direction string      `json:"direction,omitempty"`
	// Component, From and To explain a firmware downgrade.
	Component string `json:"component,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// Contribution is one metric's part in an anomaly score.
type Contribution struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Mean   float64 `json:"mean"`
	Z      float64 `json:"z"`
}

// Engine evaluates observations against rules and learns baselines as it
// goes. It is safe for concurrent use; observations of one device are
// evaluated one at a time, in the order they arrive.
type Engine struct {
	learning int
	alpha    float64
	intel    IntelMatcher
	rules    atomic.Pointer[ruleSet]
	seed     maphash.Seed
	shards   [64]shard

	cohortMu sync.Mutex
	cohorts  map[cohortKey]*quantile
}

type shard struct {
	mu      sync.Mutex
	devices map[string]*deviceState
	// models are the EWMA baselines of every metric per cohort, of this
	// shard's devices: kept per shard so learning them takes no lock of
	// its own; CohortBaselines merges the shards.
	models map[cohortKey]*ewma
}

// cohortKey names a cohort's statistic: of a rule (fleet percentiles) or
// of a metric (model baselines).
type cohortKey struct{ cohort, rule string }

// ruleSet is an immutable set of rules, indexed for evaluation.
type ruleSet struct {
	rules    []Rule
	byMetric map[string][]int
	intel    []int
	firmware []int
	anomaly  []int
}

// deviceState is what the engine knows of one device.
type deviceState struct {
	set      *ruleSet
	rules    []ruleState
	metrics  map[string]*ewma
	firmware map[string]string
	// dirty is set by every observation and cleared when the state is
	// exported for a checkpoint (state.go), so a checkpoint writes only
	// the devices that changed since the last one.
	dirty bool
}

// ruleState is one rule's state for one device.
type ruleState struct {
	q      *quantile // device rules: the device's own percentile
	bucket int64     // start (unix seconds) of the open duration bucket
	sum    float64
	open   bool
	streak int
	firing bool
}

// New returns an engine with no rules; SetRules gives it some.
func New(cfg Config) *Engine {
	e := &Engine{learning: cfg.LearningSamples, intel: cfg.Intel, seed: maphash.MakeSeed(), cohorts: map[cohortKey]*quantile{}}
	if e.learning <= 0 {
		e.learning = DefaultLearningSamples
	}
	span := cfg.Span
	if span <= 0 {
		span = e.learning
	}
	e.alpha = 2 / (float64(span) + 1)
	for i := range e.shards {
		e.shards[i].devices = map[string]*deviceState{}
		e.shards[i].models = map[cohortKey]*ewma{}
	}
	e.rules.Store(indexRules(nil))
	return e
}

// LearningSamples is the number of datapoints a baseline needs before it
// judges.
func (e *Engine) LearningSamples() int { return e.learning }

// SetRules replaces the rules. Validated rules only; disabled ones are
// skipped. Baselines of rules that keep their id and statistic carry over.
func (e *Engine) SetRules(rules []Rule) {
	e.rules.Store(indexRules(rules))
}

// Rules returns the rules in force.
func (e *Engine) Rules() []Rule { return slices.Clone(e.rules.Load().rules) }

func indexRules(rules []Rule) *ruleSet {
	s := &ruleSet{byMetric: map[string][]int{}}
	for _, r := range rules {
		if r.Disabled {
			continue
		}
		r.Actions = slices.Clone(r.Actions)
		i := len(s.rules)
		s.rules = append(s.rules, r)
		switch r.Kind {
		case KindIntel:
			s.intel = append(s.intel, i)
		case KindFirmware:
			s.firmware = append(s.firmware, i)
		case KindAnomaly:
			s.anomaly = append(s.anomaly, i)
		default:
			s.byMetric[r.Metric] = append(s.byMetric[r.Metric], i)
		}
	}
	return s
}

// statistic is what a rule's baseline depends on: a rule whose statistic
// is unchanged keeps its baseline when the rules are replaced.
func statistic(r *Rule) ruleStatistic {
	return ruleStatistic{r.Kind, r.Metric, r.Percentile, r.Duration}
}

type ruleStatistic struct {
	kind       Kind
	metric     string
	percentile float64
	duration   Duration
}

// sync brings a device's rule states in line with set.
func (d *deviceState) sync(set *ruleSet) {
	if d.set == set {
		return
	}
	old := map[string]ruleState{}
	if d.set != nil {
		for i, r := range d.set.rules {
			old[r.ID] = d.rules[i]
		}
	}
	prev := d.set
	d.rules = make([]ruleState, len(set.rules))
	for i := range set.rules {
		r := &set.rules[i]
		if st, ok := old[r.ID]; ok && prev != nil {
			if j := slices.IndexFunc(prev.rules, func(p Rule) bool { return p.ID == r.ID }); j >= 0 && statistic(&prev.rules[j]) == statistic(r) {
				d.rules[i] = st
				continue
			}
		}
		if r.Kind == KindDevice {
			q := newQuantile(r.Percentile / 100)
			d.rules[i].q = &q
		}
	}
	d.set = set
}

func (e *Engine) shard(id string) *shard {
	return &e.shards[maphash.String(e.seed, id)%uint64(len(e.shards))]
}

// Evaluate judges one observation, learns from it, and appends the
// findings of rules that started firing to out.
func (e *Engine) Evaluate(o *Observation, out []Finding) []Finding {
	set := e.rules.Load()
	sh := e.shard(o.DeviceID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.devices[o.DeviceID]
	if d == nil {
		d = &deviceState{metrics: map[string]*ewma{}}
		sh.devices[o.DeviceID] = d
	}
	d.sync(set)
	d.dirty = true
	at := o.At.Unix()

	// The anomaly score compares with the baselines as they were before
	// this observation.
	if len(set.anomaly) > 0 {
		score, learned := e.score(d, o.Values)
		for _, i := range set.anomaly {
			r := &set.rules[i]
			if f, ok := e.judge(d, i, r, "", score, learned, r.Value); ok {
				f.DeviceID, f.At = o.DeviceID, o.At
				f.Evidence.Score = score
				f.Evidence.Contributors = e.contributors(d, o.Values)
				out = append(out, f)
			}
		}
	}
	for _, v := range o.Values {
		for _, i := range set.byMetric[v.Metric] {
			r := &set.rules[i]
			x, ok := e.accumulate(&d.rules[i], r, at, v.Value)
			if !ok {
				continue
			}
			if f, fired := e.judgeMetric(d, i, r, o.Cohort, x); fired {
				f.DeviceID, f.At = o.DeviceID, o.At
				out = append(out, f)
			}
		}
		b := d.metrics[v.Metric]
		if b == nil {
			b = &ewma{}
			d.metrics[v.Metric] = b
		}
		// A value far outside a learned baseline is not learned, so an
		// attack does not become the device's normal.
		if b.n < e.learning || b.z(v.Value) < 6 {
			b.add(v.Value, e.alpha)
		}
	}
	if o.Cohort != "" {
		e.learnCohort(sh, o)
	}
	if len(set.intel) > 0 && e.intel != nil {
		for _, a := range o.Addresses {
			m, ok := e.intel.MatchIP(a.IP)
			if !ok {
				continue
			}
			for _, i := range set.intel {
				r := &set.rules[i]
				out = append(out, Finding{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, DeviceID: o.DeviceID, At: o.At,
					Actions: r.Actions, Auto: r.Auto, Evidence: Evidence{Indicator: &m, Address: a.IP.String(), Direction: a.Direction}})
			}
		}
		// A reported name is one the device looked up or contacted: a
		// destination, matched like an address by the same rules.
		for _, name := range o.Domains {
			m, ok := e.intel.MatchDomain(name)
			if !ok {
				continue
			}
			for _, i := range set.intel {
				r := &set.rules[i]
				out = append(out, Finding{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, DeviceID: o.DeviceID, At: o.At,
					Actions: r.Actions, Auto: r.Auto, Evidence: Evidence{Indicator: &m, Domain: name, Direction: DirectionDestination}})
			}
		}
	}
	for _, fw := range o.Firmware {
		if d.firmware == nil {
			d.firmware = map[string]string{}
		}
		prev, seen := d.firmware[fw.Component]
		if seen && compareVersions(fw.Version, prev) < 0 {
			for _, i := range set.firmware {
				r := &set.rules[i]
				out = append(out, Finding{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, DeviceID: o.DeviceID, At: o.At,
					Actions: r.Actions, Auto: r.Auto, Evidence: Evidence{Component: fw.Component, From: prev, To: fw.Version}})
			}
		}
		// The highest version seen stays the reference: a device that
		// downgrades and then upgrades partway is still below it.
		if !seen || compareVersions(fw.Version, prev) > 0 {
			d.firmware[fw.Component] = fw.Version
		}
	}
	return out
}

// accumulate adds v to a rule's duration bucket and returns a complete
// datapoint when one is ready: v itself without a duration, else the sum of
// the bucket that v's arrival closed.
func (e *Engine) accumulate(st *ruleState, r *Rule, at int64, v float64) (float64, bool) {
	if r.Duration == 0 {
		return v, true
	}
	secs := int64(time.Duration(r.Duration) / time.Second)
	b := at - at%secs
	switch {
	case !st.open:
		st.bucket, st.sum, st.open = b, v, true
		return 0, false
	case b == st.bucket:
		st.sum += v
		return 0, false
	case b < st.bucket:
		return 0, false // late datapoint of a bucket already judged
	}
	x := st.sum
	st.bucket, st.sum = b, v
	return x, true
}

// judgeMetric decides a static, device or fleet rule on datapoint x and
// learns x into the rule's baseline unless it breached.
func (e *Engine) judgeMetric(d *deviceState, i int, r *Rule, cohort string, x float64) (Finding, bool) {
	st := &d.rules[i]
	switch r.Kind {
	case KindStatic:
		return e.judge(d, i, r, r.Metric, x, true, r.Value)
	case KindDevice:
		learned := st.q.n >= e.learning
		th := e.threshold(r, st.q.value())
		f, fired := e.judge(d, i, r, r.Metric, x, learned, th)
		if st.streak == 0 {
			st.q.add(x)
		}
		return f, fired
	case KindFleet:
		k := cohortKey{cohort, r.ID}
		e.cohortMu.Lock()
		q := e.cohorts[k]
		if q == nil {
			nq := newQuantile(r.Percentile / 100)
			q = &nq
			e.cohorts[k] = q
		}
		learned := q.n >= e.learning
		th := e.threshold(r, q.value())
		f, fired := e.judge(d, i, r, r.Metric, x, learned, th)
		if st.streak == 0 {
			q.add(x)
		}
		e.cohortMu.Unlock()
		return f, fired
	}
	return Finding{}, false
}

// threshold is Factor times the percentile, never below Min for the
// greater-than operators.
func (e *Engine) threshold(r *Rule, p float64) float64 {
	th := r.Factor * p
	if r.Op == OpGreater || r.Op == OpGreaterEqual {
		th = max(th, r.Min)
	}
	return th
}

// judge updates a rule's streak with one datapoint and reports a finding
// when the streak reaches the rule's consecutive datapoints. A rule fires
// once per streak: it fires again only after a datapoint that does not
// breach, so alerts do not flap.
func (e *Engine) judge(d *deviceState, i int, r *Rule, metric string, x float64, learned bool, threshold float64) (Finding, bool) {
	st := &d.rules[i]
	if !learned || !r.breaches(x, threshold) {
		st.streak, st.firing = 0, false
		return Finding{}, false
	}
	st.streak++
	if st.firing || st.streak < r.Consecutive {
		return Finding{}, false
	}
	st.firing = true
	ev := Evidence{Metric: metric, Value: x, Threshold: threshold, Op: r.Op, Consecutive: st.streak}
	if r.Kind == KindDevice || r.Kind == KindFleet {
		ev.Percentile = r.Percentile
	}
	return Finding{RuleID: r.ID, Kind: r.Kind, Severity: r.Severity, Actions: r.Actions, Auto: r.Auto, Evidence: ev}, true
}

// score is the multi-metric anomaly score of values against the device's
// own baselines: the Euclidean norm of the positive z-scores of the
// metrics whose baselines have learned. It reports whether at least two
// metrics had learned baselines.
func (e *Engine) score(d *deviceState, values []Value) (float64, bool) {
	var sum float64
	n := 0
	for _, v := range values {
		b := d.metrics[v.Metric]
		if b == nil || b.n < e.learning {
			continue
		}
		n++
		if z := b.z(v.Value); z > 0 {
			sum += z * z
		}
	}
	return math.Sqrt(sum), n >= 2
}

// contributors are the three metrics that added most to a score.
func (e *Engine) contributors(d *deviceState, values []Value) []Contribution {
	var cs []Contribution
	for _, v := range values {
		if b := d.metrics[v.Metric]; b != nil && b.n >= e.learning {
			if z := b.z(v.Value); z > 0 {
				cs = append(cs, Contribution{Metric: v.Metric, Value: v.Value, Mean: b.mean, Z: z})
			}
		}
	}
	slices.SortFunc(cs, func(a, b Contribution) int { return cmp.Compare(b.Z, a.Z) })
	return cs[:min(3, len(cs))]
}

// learnCohort adds an observation's datapoints to its cohort's baselines
// in the device's shard, whose lock the caller holds.
func (e *Engine) learnCohort(sh *shard, o *Observation) {
	for _, v := range o.Values {
		k := cohortKey{o.Cohort, v.Metric}
		b := sh.models[k]
		if b == nil {
			b = &ewma{}
			sh.models[k] = b
		}
		b.add(v.Value, e.alpha)
	}
}

// CohortBaselines returns the baselines of a cohort (a model), sorted by
// metric: each shard's EWMA merged, weighted by its datapoints (the law of
// total variance for the spread).
func (e *Engine) CohortBaselines(cohort string) []Baseline {
	var bs []Baseline
	for metric, w := range e.cohortModels(cohort) {
		bs = append(bs, w.snapshot(metric))
	}
	slices.SortFunc(bs, func(a, b Baseline) int { return strings.Compare(a.Metric, b.Metric) })
	return bs
}

// DeviceBaselines returns the baselines learned for a device, sorted by
// metric, and whether it is still learning (some metric has fewer than
// LearningSamples datapoints). ok is false for a device never observed.
func (e *Engine) DeviceBaselines(id string) (bs []Baseline, learning, ok bool) {
	sh := e.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.devices[id]
	if d == nil {
		return nil, true, false
	}
	for m, b := range d.metrics {
		bs = append(bs, b.snapshot(m))
		if b.n < e.learning {
			learning = true
		}
	}
	slices.SortFunc(bs, func(a, b Baseline) int { return strings.Compare(a.Metric, b.Metric) })
	return bs, learning || len(bs) == 0, true
}
