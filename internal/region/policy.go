package region

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Allocation policies (docs/regions.md says exactly how each decides).
const (
	PolicyLowestLatency = "lowest-latency"
	PolicyGeo           = "geo"
	PolicyWeighted      = "weighted"
	PolicyStatic        = "static"
	PolicyHook          = "hook"
)

// Hook policy limits.
const (
	DefaultHookTimeout = 2 * time.Second
	maxHookTimeout     = 30 * time.Second
)

// ErrNoRegion means no region is enabled: there is nothing to allocate.
var ErrNoRegion = errors.New("region: no region is enabled")

// Policy is a template's region section: how its devices get their home
// region.
type Policy struct {
	// Policy is one of the Policy* names; lowest-latency when empty.
	Policy string `json:"policy,omitempty"`
	// Region is the region of the static policy.
	Region string `json:"region,omitempty"`
	// Hook is the allocation service of the hook policy.
	Hook *AllocationHook `json:"hook,omitempty"`
	// Fallback decides when static's region is not enabled or the hook
	// fails; lowest-latency when empty. It cannot be hook or static.
	Fallback string `json:"fallback,omitempty"`
	// Location is where this template's devices are, for geo, when
	// neither the request nor the device record says.
	Location *Location `json:"location,omitempty"`
}

// AllocationHook is an HTTP service that chooses regions.
type AllocationHook struct {
	URL string `json:"url"`
	// Timeout is a Go duration such as 2s; DefaultHookTimeout when empty.
	Timeout string `json:"timeout,omitempty"`
}

// Validate checks a template's region section and fills in defaults.
// Errors are *fleet.FieldError with fields under "region.".
func (p *Policy) Validate() error {
	if p.Policy == "" {
		p.Policy = PolicyLowestLatency
	}
	bad := func(field, format string, args ...any) error {
		return &fleet.FieldError{Field: "region." + field, Message: fmt.Sprintf(format, args...)}
	}
	all := []string{PolicyLowestLatency, PolicyGeo, PolicyWeighted, PolicyStatic, PolicyHook}
	if !slices.Contains(all, p.Policy) {
		return bad("policy", "%q is not lowest-latency, geo, weighted, static or hook", p.Policy)
	}
	if p.Fallback == "" {
		p.Fallback = PolicyLowestLatency
	}
	if !slices.Contains(all[:3], p.Fallback) {
		return bad("fallback", "%q is not lowest-latency, geo or weighted", p.Fallback)
	}
	switch {
	case p.Policy == PolicyStatic && p.Region == "":
		return bad("region", "the static policy needs a region name")
	case p.Policy != PolicyStatic && p.Region != "":
		return bad("region", "is only for the static policy")
	case p.Policy == PolicyHook && p.Hook == nil:
		return bad("hook", "the hook policy needs a hook URL")
	case p.Policy != PolicyHook && p.Hook != nil:
		return bad("hook", "is only for the hook policy")
	}
	if p.Location != nil {
		if err := ValidLocation(*p.Location); err != nil {
			return bad("location", "%v", err)
		}
	}
	if h := p.Hook; h != nil {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("hook.url", "%q is not an http or https URL", h.URL)
		}
		if _, err := h.timeout(); err != nil {
			return bad("hook.timeout", "%v", err)
		}
	}
	return nil
}

func (h *AllocationHook) timeout() (time.Duration, error) {
	if h.Timeout == "" {
		return DefaultHookTimeout, nil
	}
	d, err := time.ParseDuration(h.Timeout)
	if err != nil || d <= 0 || d > maxHookTimeout {
		return 0, fmt.Errorf("%q must be a duration between 1ms and %s, such as 2s", h.Timeout, maxHookTimeout)
	}
	return d, nil
}

// Input is what a policy knows about a device.
type Input struct {
	DeviceID string
	Factory  string
	Model    string
	Serial   string
	Template string
	// Home is the device's current home region ("" before its first);
	// it wins ties.
	Home         string
	Measurements map[string]Measurement
	// Location is where the device says it is, or else where its record
	// says; nil when neither.
	Location *Location
}

// Decision is a policy's choice and the numbers behind it, recorded in the
// device's history.
type Decision struct {
	// Region is the chosen region.
	Region Region `json:"-"`
	Name   string `json:"region"`
	// Policy is the template's policy; DecidedBy the one that decided,
	// which differs when a fallback decided, and Reason says why.
	Policy    string `json:"policy"`
	DecidedBy string `json:"decidedBy"`
	Reason    string `json:"reason,omitempty"`
	// MedianMs are the usable medians by region (lowest-latency; also
	// recorded for the others when the device measured).
	MedianMs map[string]float64 `json:"medianMs,omitempty"`
	// DistanceKm are the great-circle distances by region (geo).
	DistanceKm map[string]float64 `json:"distanceKm,omitempty"`
}

// Allocator applies policies. The zero value is ready; HTTP calls hooks
// (http.DefaultClient when nil).
type Allocator struct {
	HTTP *http.Client
}

// Choose picks the home region of a device by p among regions. Only
// enabled regions are candidates; ErrNoRegion when there is none. It never
// fails otherwise: every policy falls back as documented.
func (a *Allocator) Choose(ctx context.Context, p Policy, regions []Region, in Input) (*Decision, error) {
	var cand []Region
	for _, g := range regions {
		if g.Status == store.RegionEnabled {
			cand = append(cand, g)
		}
	}
	if len(cand) == 0 {
		return nil, ErrNoRegion
	}
	sort.Slice(cand, func(i, j int) bool { return cand[i].Name < cand[j].Name })
	if p.Policy == "" {
		p.Policy = PolicyLowestLatency
	}
	if p.Fallback == "" {
		p.Fallback = PolicyLowestLatency
	}
	d := &Decision{Policy: p.Policy, MedianMs: Medians(in.Measurements)}
	if len(d.MedianMs) == 0 {
		d.MedianMs = nil
	}
	switch p.Policy {
	case PolicyStatic:
		if i := slices.IndexFunc(cand, func(g Region) bool { return g.Name == p.Region }); i >= 0 {
			return d.chose(cand[i], PolicyStatic), nil
		}
		d.Reason = fmt.Sprintf("static region %q is not enabled", p.Region)
		return a.fallback(d, p, cand, in), nil
	case PolicyHook:
		name, err := a.callHook(ctx, p.Hook, cand, in)
		if err == nil {
			if i := slices.IndexFunc(cand, func(g Region) bool { return g.Name == name }); i >= 0 {
				return d.chose(cand[i], PolicyHook), nil
			}
			err = fmt.Errorf("it chose %q, which is not an enabled region", name)
		}
		d.Reason = "hook failed: " + err.Error()
		return a.fallback(d, p, cand, in), nil
	}
	return a.decide(d, p.Policy, p, cand, in), nil
}

// fallback decides with p.Fallback after static or hook could not.
func (a *Allocator) fallback(d *Decision, p Policy, cand []Region, in Input) *Decision {
	return a.decide(d, p.Fallback, p, cand, in)
}

// decide applies one of lowest-latency, geo and weighted; the first two
// fall back to weighted when they have nothing to go on.
func (a *Allocator) decide(d *Decision, policy string, p Policy, cand []Region, in Input) *Decision {
	switch policy {
	case PolicyLowestLatency:
		if g, ok := lowestLatency(cand, d.MedianMs, in.Home); ok {
			return d.chose(g, PolicyLowestLatency)
		}
		d.addReason("no usable measurement of an enabled region")
	case PolicyGeo:
		loc := in.Location
		if loc == nil {
			loc = p.Location
		}
		if g, dist, ok := nearest(cand, loc); ok {
			d.DistanceKm = dist
			return d.chose(g, PolicyGeo)
		}
		d.addReason("no device location, or no enabled region with a location")
	}
	return d.chose(weighted(cand, in.DeviceID), PolicyWeighted)
}

func (d *Decision) addReason(r string) {
	if d.Reason != "" {
		r = d.Reason + "; " + r
	}
	d.Reason = r
}

func (d *Decision) chose(g Region, by string) *Decision {
	d.Region, d.Name, d.DecidedBy = g, g.Name, by
	return d
}

// lowestLatency is the candidate with the smallest median (at 0.1 ms);
// ties go to home, then to the higher weight, then to the first name.
func lowestLatency(cand []Region, medians map[string]float64, home string) (Region, bool) {
	best, found := -1, false
	for i, g := range cand {
		m, ok := medians[g.Name]
		if !ok {
			continue
		}
		if !found || better(g, m, cand[best], medians[cand[best].Name], home) {
			best, found = i, true
		}
	}
	if !found {
		return Region{}, false
	}
	return cand[best], true
}

// better reports whether region a at median ma beats b at mb.
func better(a Region, ma float64, b Region, mb float64, home string) bool {
	if ma != mb {
		return ma < mb
	}
	if (a.Name == home) != (b.Name == home) {
		return a.Name == home
	}
	if a.Weight != b.Weight {
		return a.Weight > b.Weight
	}
	return a.Name < b.Name
}

// nearest is the candidate with a location closest to loc by great-circle
// distance (ties at 1 m go to the first name), with every distance.
func nearest(cand []Region, loc *Location) (Region, map[string]float64, bool) {
	if loc == nil || ValidLocation(*loc) != nil {
		return Region{}, nil, false
	}
	dist := map[string]float64{}
	best := -1
	for i, g := range cand {
		if g.Location == nil {
			continue
		}
		km := math.Round(DistanceKm(*loc, *g.Location)*1000) / 1000
		dist[g.Name] = km
		if best < 0 || km < dist[cand[best].Name] {
			best = i
		}
	}
	if best < 0 {
		return Region{}, nil, false
	}
	return cand[best], dist, true
}

// weighted picks by weighted rendezvous hashing of the device id: each
// region with a positive weight w scores -w/ln(u), u being the first 64
// bits of SHA-256(region name, 0x00, device id) mapped into (0,1); the
// highest score wins, which makes a region's share w/sum(w). A
// device stays where it is unless its region goes or a new region wins it,
// and shares follow the weights. With no positive weight, the first name.
func weighted(cand []Region, deviceID string) Region {
	best, bestScore := -1, 0.0
	for i, g := range cand {
		if g.Weight <= 0 {
			continue
		}
		sum := sha256.Sum256([]byte(g.Name + "\x00" + deviceID))
		u := (float64(binary.BigEndian.Uint64(sum[:8])>>11) + 0.5) / (1 << 53)
		score := -float64(g.Weight) / math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return cand[0]
	}
	return cand[best]
}
