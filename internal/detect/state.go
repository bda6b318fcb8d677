package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Learned state survives a node restart by being exported, stored and
// imported again (docs/decisions/0017-detection-state.md). The encoding is
// a compact binary one: about 200 bytes for a device with the gateway's
// eleven metrics, 600 with device reports too:
//
//	state    = version:byte kind:byte body
//	device   = metrics rules firmware
//	metrics  = count:uvarint { name ewma }
//	ewma     = n:uvarint mean:f64 variance:f64
//	rules    = count:uvarint { id:str kind:byte metric:name percentile:f64
//	           duration:varint flags:byte [quantile] [bucket:varint sum:f64] }
//	firmware = count:uvarint { component:str version:str }
//	cohort   = count:uvarint { name ewma } count:uvarint { rule:str quantile }
//	quantile = p:f64 n:uvarint heights:f64{min(n,5)} [pos1..3:uvarint des1..3:f64]
//	name     = index:uvarint, 0 followed by str when not in stateNames
//	str      = length:uvarint bytes
//
// f64 is an IEEE 754 double, little endian. What is not kept: the
// consecutive-breach streaks and whether a rule is firing, so a rule that
// was firing before a restart fires again on its next breach.

// StateVersion is the format version of exported state. A change to the
// encoding gets a new version; state of another version is refused with
// ErrStateVersion and the device or cohort learns again.
const StateVersion = 1

// Kinds of exported state.
const (
	stateDevice byte = 'd'
	stateCohort byte = 'c'
)

// Errors of ImportDevice and ImportCohort. Either way the state is
// discarded and the device or cohort learns again.
var (
	ErrStateVersion = errors.New("detect: state has an unknown format version")
	ErrStateCorrupt = errors.New("detect: state is corrupt")
)

// stateNames are the metric names encoded as a one-byte index. The list is
// part of format version 1: names may be appended, never reordered or
// removed. A name appended later decodes as corrupt in an older build,
// which then discards the state.
var stateNames = [...]string{
	MetricAttempts, MetricConnects, MetricTakeovers, MetricDisconnects, MetricAuthFailures,
	MetricMessagesIn, MetricMessagesOut, MetricBytesIn, MetricBytesOut, MetricTopics, MetricSourceIPs,
	MetricReportListening, MetricReportConnections, MetricReportDestinations, MetricReportRemotePorts,
	MetricReportBytesIn, MetricReportBytesOut, MetricReportPacketsIn, MetricReportPacketsOut,
}

// stateKinds are the rule kinds by their encoded index, part of format
// version 1 like stateNames.
var stateKinds = [...]Kind{KindStatic, KindDevice, KindFleet, KindAnomaly, KindIntel, KindFirmware}

// Bounds a decoder accepts, far above what the engine produces, so a
// corrupt length cannot make it allocate without limit.
const (
	maxStateItems  = 4096
	maxStateString = 1024
)

// Rule state flags.
const (
	flagQuantile byte = 1 << iota
	flagOpen
)

// DeviceState is one device's exported state.
type DeviceState struct {
	ID    string
	State []byte
}

// Observed reports whether the engine has state for a device, observed
// or imported.
func (e *Engine) Observed(id string) bool {
	sh := e.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.devices[id] != nil
}

// ExportDevice returns the encoded learned state of a device; ok is false
// for a device never observed.
func (e *Engine) ExportDevice(id string) (state []byte, ok bool) {
	sh := e.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.devices[id]
	if d == nil {
		return nil, false
	}
	return appendDevice(nil, d), true
}

// ExportChanged exports the devices observed since their last export,
// one shard at a time, and clears their changed flag. fn receives each
// shard's batch outside the shard's lock and must not keep the batch (its
// memory is reused). When fn fails, the batch's devices are flagged
// changed again, so the next export retries them, and the error is
// returned without exporting the remaining shards.
func (e *Engine) ExportChanged(fn func(batch []DeviceState) error) error {
	var arena []byte
	var batch []DeviceState
	var ends []int
	for i := range e.shards {
		sh := &e.shards[i]
		arena, batch, ends = arena[:0], batch[:0], ends[:0]
		sh.mu.Lock()
		for id, d := range sh.devices {
			if !d.dirty {
				continue
			}
			d.dirty = false
			arena = appendDevice(arena, d)
			batch = append(batch, DeviceState{ID: id})
			ends = append(ends, len(arena))
		}
		sh.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		// The arena may have moved while it grew: slice it once it is
		// complete.
		start := 0
		for j := range batch {
			batch[j].State = arena[start:ends[j]:ends[j]]
			start = ends[j]
		}
		if err := fn(batch); err != nil {
			sh.mu.Lock()
			for _, s := range batch {
				if d := sh.devices[s.ID]; d != nil {
					d.dirty = true
				}
			}
			sh.mu.Unlock()
			return err
		}
	}
	return nil
}

// ImportDevice restores a device's state exported by ExportDevice or
// ExportChanged, possibly by another node. A device the engine has
// already learned (every metric past LearningSamples) keeps what it has
// and imported is false; one still learning is replaced, keeping the
// highest firmware versions of both. A state of another format version
// or a corrupt one is refused with an error wrapping ErrStateVersion or
// ErrStateCorrupt, and the engine is unchanged.
func (e *Engine) ImportDevice(id string, state []byte) (imported bool, err error) {
	nd, err := decodeDevice(state)
	if err != nil {
		return false, fmt.Errorf("device %s: %w", id, err)
	}
	sh := e.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.devices[id]; old != nil {
		if e.learned(old) {
			return false, nil
		}
		for c, v := range old.firmware {
			if prev, ok := nd.firmware[c]; !ok || compareVersions(v, prev) > 0 {
				if nd.firmware == nil {
					nd.firmware = map[string]string{}
				}
				nd.firmware[c] = v
			}
		}
	}
	sh.devices[id] = nd
	return true, nil
}

// learned reports whether every baseline of d has judged-enough samples.
func (e *Engine) learned(d *deviceState) bool {
	for _, b := range d.metrics {
		if b.n < e.learning {
			return false
		}
	}
	return len(d.metrics) > 0
}

// Cohorts lists the cohorts the engine has learned something of.
func (e *Engine) Cohorts() []string {
	seen := map[string]bool{}
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for k := range sh.models {
			seen[k.cohort] = true
		}
		sh.mu.Unlock()
	}
	e.cohortMu.Lock()
	for k := range e.cohorts {
		seen[k.cohort] = true
	}
	e.cohortMu.Unlock()
	delete(seen, "")
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// ExportCohort returns the encoded state of a cohort: its model baselines
// (the shards' merged) and its fleet-rule percentiles. ok is false for a
// cohort the engine knows nothing of.
func (e *Engine) ExportCohort(cohort string) (state []byte, ok bool) {
	models := e.cohortModels(cohort)
	type fleetQ struct {
		rule string
		q    quantile
	}
	var qs []fleetQ
	e.cohortMu.Lock()
	for k, q := range e.cohorts {
		if k.cohort == cohort {
			qs = append(qs, fleetQ{k.rule, *q})
		}
	}
	e.cohortMu.Unlock()
	if len(models) == 0 && len(qs) == 0 {
		return nil, false
	}
	b := []byte{StateVersion, stateCohort}
	b = binary.AppendUvarint(b, uint64(len(models)))
	for m, w := range models {
		b = appendName(b, m)
		b = appendEwma(b, w)
	}
	b = binary.AppendUvarint(b, uint64(len(qs)))
	for _, fq := range qs {
		b = appendString(b, fq.rule)
		b = appendQuantile(b, &fq.q)
	}
	return b, true
}

// ImportCohort restores a cohort's state exported by ExportCohort. A
// cohort the engine has already started learning keeps what it has and
// imported is false. Errors are as for ImportDevice.
func (e *Engine) ImportCohort(cohort string, state []byte) (imported bool, err error) {
	r := dec{b: state}
	if err := r.header(stateCohort); err != nil {
		return false, fmt.Errorf("cohort %s: %w", cohort, err)
	}
	models := map[string]ewma{}
	for range r.count() {
		m := r.name()
		models[m] = r.ewma()
	}
	qs := map[string]quantile{}
	for range r.count() {
		rule := r.str()
		qs[rule] = r.quantile()
	}
	if err := r.end(); err != nil {
		return false, fmt.Errorf("cohort %s: %w", cohort, err)
	}
	if len(e.cohortModels(cohort)) > 0 {
		return false, nil
	}
	e.cohortMu.Lock()
	defer e.cohortMu.Unlock()
	for k := range e.cohorts {
		if k.cohort == cohort {
			return false, nil
		}
	}
	for rule, q := range qs {
		e.cohorts[cohortKey{cohort, rule}] = &q
	}
	// The merged baselines go to one shard; CohortBaselines merges them
	// with what the other shards learn from now on.
	sh := e.shard(cohort)
	sh.mu.Lock()
	for m, w := range models {
		sh.models[cohortKey{cohort, m}] = &w
	}
	sh.mu.Unlock()
	return true, nil
}

// cohortModels merges the shards' baselines of a cohort, by metric.
func (e *Engine) cohortModels(cohort string) map[string]ewma {
	parts := map[string][]ewma{}
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for k, b := range sh.models {
			if k.cohort == cohort {
				parts[k.rule] = append(parts[k.rule], *b)
			}
		}
		sh.mu.Unlock()
	}
	out := make(map[string]ewma, len(parts))
	for m, ps := range parts {
		out[m] = mergeEwma(ps)
	}
	return out
}

// mergeEwma combines baselines learned from disjoint datapoints, weighted
// by their datapoints (the law of total variance for the spread).
func mergeEwma(ps []ewma) ewma {
	var n int
	var mean float64
	for _, p := range ps {
		n += p.n
		mean += float64(p.n) * p.mean
	}
	if n == 0 {
		return ewma{}
	}
	mean /= float64(n)
	var vari float64
	for _, p := range ps {
		d := p.mean - mean
		vari += float64(p.n) * (p.vari + d*d)
	}
	return ewma{n: n, mean: mean, vari: vari / float64(n)}
}

// appendDevice encodes d; the caller holds its shard's lock.
func appendDevice(b []byte, d *deviceState) []byte {
	b = append(b, StateVersion, stateDevice)
	b = binary.AppendUvarint(b, uint64(len(d.metrics)))
	for m, w := range d.metrics {
		b = appendName(b, m)
		b = appendEwma(b, *w)
	}
	n := 0
	if d.set != nil {
		for i := range d.set.rules {
			if keepsState(&d.set.rules[i], &d.rules[i]) {
				n++
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i := 0; n > 0 && i < len(d.set.rules); i++ {
		r, st := &d.set.rules[i], &d.rules[i]
		if !keepsState(r, st) {
			continue
		}
		b = appendString(b, r.ID)
		b = append(b, byte(slices.Index(stateKinds[:], r.Kind)))
		b = appendName(b, r.Metric)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Percentile))
		b = binary.AppendVarint(b, int64(r.Duration))
		var flags byte
		if st.q != nil {
			flags |= flagQuantile
		}
		if st.open {
			flags |= flagOpen
		}
		b = append(b, flags)
		if st.q != nil {
			b = appendQuantile(b, st.q)
		}
		if st.open {
			b = binary.AppendVarint(b, st.bucket)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(st.sum))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(d.firmware)))
	for c, v := range d.firmware {
		b = appendString(b, c)
		b = appendString(b, v)
	}
	return b
}

// keepsState reports whether a rule has per-device state worth keeping: a
// device percentile that has seen datapoints, or an open duration bucket.
// A rule left out starts afresh after the import, as it would have.
func keepsState(r *Rule, st *ruleState) bool {
	return (r.Kind == KindDevice && st.q != nil && st.q.n > 0) || st.open
}

func decodeDevice(state []byte) (*deviceState, error) {
	r := dec{b: state}
	if err := r.header(stateDevice); err != nil {
		return nil, err
	}
	d := &deviceState{metrics: map[string]*ewma{}}
	for range r.count() {
		m := r.name()
		w := r.ewma()
		d.metrics[m] = &w
	}
	// The rules the state was learned under become the device's rule set;
	// the first observation carries over the states of rules that kept
	// their id and statistic (deviceState.sync).
	set := &ruleSet{}
	for range r.count() {
		var rule Rule
		rule.ID = r.str()
		k := int(r.byte())
		if k >= len(stateKinds) {
			r.fail()
			break
		}
		rule.Kind = stateKinds[k]
		rule.Metric = r.name()
		rule.Percentile = r.finite()
		rule.Duration = Duration(r.varint())
		flags := r.byte()
		var st ruleState
		if flags&flagQuantile != 0 {
			q := r.quantile()
			st.q = &q
		}
		if flags&flagOpen != 0 {
			st.open = true
			st.bucket = r.varint()
			st.sum = r.finite()
		}
		if rule.Kind == KindDevice && st.q == nil {
			r.fail()
		}
		set.rules = append(set.rules, rule)
		d.rules = append(d.rules, st)
	}
	d.set = set
	for range r.count() {
		c := r.str()
		v := r.str()
		if d.firmware == nil {
			d.firmware = map[string]string{}
		}
		d.firmware[c] = v
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return d, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendName(b []byte, m string) []byte {
	for i, n := range stateNames {
		if n == m {
			return binary.AppendUvarint(b, uint64(i+1))
		}
	}
	return appendString(append(b, 0), m)
}

func appendEwma(b []byte, w ewma) []byte {
	b = binary.AppendUvarint(b, uint64(w.n))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(w.mean))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(w.vari))
}

// appendQuantile encodes a P² estimator exactly, leaving out what follows
// from the rest: the increments follow from p, the outer marker positions
// are 1 and n, the outer desired positions 1 and n (both exact in float64).
func appendQuantile(b []byte, q *quantile) []byte {
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q.p))
	b = binary.AppendUvarint(b, uint64(q.n))
	for i := range min(q.n, 5) {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q.q[i]))
	}
	if q.n >= 5 {
		for i := 1; i <= 3; i++ {
			b = binary.AppendUvarint(b, uint64(q.pos[i]))
		}
		for i := 1; i <= 3; i++ {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q.des[i]))
		}
	}
	return b
}

// dec decodes state, remembering the first error so callers check once.
type dec struct {
	b   []byte
	err error
}

func (r *dec) fail() {
	if r.err == nil {
		r.err = ErrStateCorrupt
	}
	r.b = nil
}

func (r *dec) header(kind byte) error {
	if len(r.b) < 2 {
		return ErrStateCorrupt
	}
	if r.b[0] != StateVersion {
		return fmt.Errorf("%w: %d, this build reads %d", ErrStateVersion, r.b[0], StateVersion)
	}
	if r.b[1] != kind {
		return fmt.Errorf("%w: kind %q, want %q", ErrStateCorrupt, r.b[1], kind)
	}
	r.b = r.b[2:]
	return nil
}

// end reports the first error, or trailing bytes as corruption.
func (r *dec) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = ErrStateCorrupt
	}
	return r.err
}

func (r *dec) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *dec) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *dec) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// finite decodes a float64 that must be a number.
func (r *dec) finite() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.fail()
		return 0
	}
	return v
}

// count decodes a number of items; a corrupt one yields zero items.
func (r *dec) count() int {
	v := r.uvarint()
	if v > maxStateItems {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *dec) str() string {
	n := r.uvarint()
	if n > maxStateString || n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *dec) name() string {
	i := r.uvarint()
	switch {
	case i == 0:
		return r.str()
	case i <= uint64(len(stateNames)):
		return stateNames[i-1]
	}
	r.fail()
	return ""
}

// samples decodes a datapoint count.
func (r *dec) samples() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *dec) ewma() ewma {
	w := ewma{n: r.samples(), mean: r.finite(), vari: r.finite()}
	if w.vari < 0 {
		r.fail()
	}
	return w
}

func (r *dec) quantile() quantile {
	p := r.finite()
	if p <= 0 || p >= 1 {
		r.fail()
		return quantile{}
	}
	q := newQuantile(p)
	q.n = r.samples()
	for i := range min(q.n, 5) {
		q.q[i] = r.finite()
	}
	if q.n < 5 {
		return q
	}
	q.pos[0], q.pos[4] = 1, float64(q.n)
	for i := 1; i <= 3; i++ {
		q.pos[i] = float64(r.samples())
	}
	q.des[0], q.des[4] = 1, float64(q.n)
	for i := 1; i <= 3; i++ {
		q.des[i] = r.finite()
	}
	// Marker positions strictly increase, or the interpolation would
	// divide by zero.
	for i := 1; i < 5; i++ {
		if q.pos[i] <= q.pos[i-1] {
			r.fail()
		}
	}
	return q
}
