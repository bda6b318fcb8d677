package region

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Store is what the service reads and writes; *store.Store implements it.
type Store interface {
	ListRegions(ctx context.Context) ([]store.Region, error)
	GetDevice(ctx context.Context, id string) (*fleet.Device, error)
	UpdateDevice(ctx context.Context, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*store.Change, error)) (*fleet.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, cursor string, limit int) ([]*fleet.Device, string, error)
	EachDevice(ctx context.Context, f store.DeviceFilter, fn func(*fleet.Device) error) error
}

var _ Store = (*store.Store)(nil)

// DefaultCacheTTL is how long a node uses the regions it read: changes
// made on another node reach it within this time.
const DefaultCacheTTL = time.Second

// Config configures a Service.
type Config struct {
	Store Store
	// Node is the region this node serves.
	Node string
	// Hysteresis for re-homing; DefaultHysteresis when zero.
	Hysteresis Hysteresis
	// HTTP calls allocation hooks; http.DefaultClient when nil.
	HTTP *http.Client
	// CacheTTL defaults to DefaultCacheTTL.
	CacheTTL time.Duration
	// BootstrapTTL defaults to DefaultBootstrapTTL.
	BootstrapTTL time.Duration
	Logger       *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service is a node's view of the regions: allocation for the
// provisioning pipeline, the bootstrap document, re-homing from reports,
// draining, and where a device belongs for the gateway. Safe for
// concurrent use.
type Service struct {
	st    Store
	node  string
	hyst  Hysteresis
	alloc Allocator
	ttl   time.Duration
	bttl  time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	cached  []Region
	readAt  time.Time
	hasRead bool
}

// New returns a service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("region: a service needs a store")
	}
	s := &Service{st: cfg.Store, node: cfg.Node, hyst: cfg.Hysteresis, alloc: Allocator{HTTP: cfg.HTTP},
		ttl: cfg.CacheTTL, bttl: cfg.BootstrapTTL, log: cfg.Logger, now: cfg.Now}
	if s.hyst == (Hysteresis{}) {
		s.hyst = DefaultHysteresis
	}
	if err := s.hyst.Validate(); err != nil {
		return nil, err
	}
	if s.ttl <= 0 {
		s.ttl = DefaultCacheTTL
	}
	if s.bttl <= 0 {
		s.bttl = DefaultBootstrapTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Node is the region this node serves.
func (s *Service) Node() string { return s.node }

// Regions returns every region, read at most CacheTTL ago.
func (s *Service) Regions(ctx context.Context) ([]Region, error) {
	s.mu.Lock()
	if s.hasRead && s.now().Sub(s.readAt) < s.ttl {
		out := s.cached
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	list, err := s.st.ListRegions(ctx)
	if err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	s.mu.Lock()
	s.cached, s.readAt, s.hasRead = list, s.now(), true
	s.mu.Unlock()
	return list, nil
}

// Forget drops the cached regions, so the next read sees this node's own
// changes at once.
func (s *Service) Forget() {
	s.mu.Lock()
	s.hasRead = false
	s.mu.Unlock()
}

func (s *Service) region(ctx context.Context, name string) (Region, bool, error) {
	list, err := s.Regions(ctx)
	if err != nil {
		return Region{}, false, err
	}
	for _, g := range list {
		if g.Name == name {
			return g, true, nil
		}
	}
	return Region{}, false, nil
}

// Bootstrap returns the signed bootstrap document: the enabled regions,
// valid for BootstrapTTL, signed by key whose certificate is chain[0].
func (s *Service) Bootstrap(ctx context.Context, key crypto.Signer, chain []*x509.Certificate) (string, error) {
	list, err := s.Regions(ctx)
	if err != nil {
		return "", err
	}
	now := s.now()
	doc := &Document{Issuer: "muster", Node: s.node, IssuedAt: now.Unix(), Expires: now.Add(s.bttl).Unix(), Regions: []Entry{}}
	for _, g := range list {
		if g.Status == store.RegionEnabled {
			doc.Regions = append(doc.Regions, Entry{Name: g.Name, ProbeURL: g.ProbeURL, ProvisionURL: g.ProvisionURL, MQTTURL: g.MQTTURL, Location: g.Location})
		}
	}
	return SignBootstrap(doc, key, chain)
}

// Allocate decides a device's home region by p (lowest-latency when nil).
// It returns nil without error when no region is enabled (or none is
// defined): the node then gives the device its own region, as before
// regions existed.
func (s *Service) Allocate(ctx context.Context, p *Policy, in Input) (*Decision, error) {
	list, err := s.Regions(ctx)
	if err != nil {
		return nil, err
	}
	pol := Policy{}
	if p != nil {
		pol = *p
	}
	d, err := s.alloc.Choose(ctx, pol, list, in)
	if errors.Is(err, ErrNoRegion) {
		if len(list) > 0 {
			s.log.WarnContext(ctx, "no region is enabled; the device gets this node's region", "device", in.DeviceID, "node", s.node)
		}
		return nil, nil
	}
	return d, err
}

// SetHome writes d into a device's attributes (inside an update's fn).
func SetHome(dev *fleet.Device, d *Decision) {
	if dev.Attributes == nil {
		dev.Attributes = map[string]string{}
	}
	dev.Attributes[AttrHome] = d.Name
	dev.Attributes[AttrPolicy] = d.DecidedBy
	if len(d.MedianMs) > 0 {
		b, _ := json.Marshal(d.MedianMs) // a map of floats always encodes
		dev.Attributes[AttrMeasurements] = string(b)
	} else {
		delete(dev.Attributes, AttrMeasurements)
	}
	delete(dev.Attributes, AttrStreak)
}

// storedMedians reads AttrMeasurements back.
func storedMedians(dev *fleet.Device) map[string]Measurement {
	var m map[string]float64
	if err := json.Unmarshal([]byte(dev.Attributes[AttrMeasurements]), &m); err != nil {
		return nil
	}
	out := make(map[string]Measurement, len(m))
	for k, v := range m {
		out[k] = Measurement{MedianMs: v}
	}
	return out
}

// Home is a device's home region and where it is.
type Home struct {
	Region       string `json:"region"`
	ProvisionURL string `json:"provisionUrl,omitempty"`
	MQTTURL      string `json:"mqttUrl,omitempty"`
}

// HomeOf returns the home of a device: its region's endpoints, or ok false
// when it has none, or its region is unknown.
func (s *Service) HomeOf(ctx context.Context, dev *fleet.Device) (Home, bool, error) {
	name := dev.Attributes[AttrHome]
	if name == "" {
		return Home{}, false, nil
	}
	g, ok, err := s.region(ctx, name)
	if err != nil || !ok {
		return Home{}, false, err
	}
	return Home{Region: g.Name, ProvisionURL: g.ProvisionURL, MQTTURL: g.MQTTURL}, true, nil
}

// Redirect reports where a device connecting to this node belongs
// instead: its home region's MQTT URL when that home is another region
// that is enabled. A device of no region, of this node's region, or of a
// region that is not enabled is served here.
func (s *Service) Redirect(ctx context.Context, deviceID string) (string, bool, error) {
	list, err := s.Regions(ctx)
	if err != nil {
		return "", false, err
	}
	// Without another enabled region nobody is sent anywhere: spare the
	// connection the device read.
	if !slices.ContainsFunc(list, func(g Region) bool { return g.Name != s.node && g.Status == store.RegionEnabled }) {
		return "", false, nil
	}
	dev, err := s.st.GetDevice(ctx, deviceID)
	if err != nil {
		return "", false, err
	}
	name := dev.Attributes[AttrHome]
	if name == "" || name == s.node {
		return "", false, nil
	}
	g, ok, err := s.region(ctx, name)
	if err != nil || !ok || g.Status != store.RegionEnabled {
		return "", false, err
	}
	return g.MQTTURL, true, nil
}

// rehomeData is the data of a device.rehomed event.
type rehomeData struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Cause is report (hysteresis met), drain (home region draining,
	// disabled or deleted) or first-report (no home before).
	Cause    string    `json:"cause"`
	Decision *Decision `json:"decision"`
	// Hysteresis is the rule that was met (report).
	Hysteresis string `json:"hysteresis,omitempty"`
}

// streakData is the data of a device.region_streak event.
type streakData struct {
	Home       string             `json:"home"`
	Better     string             `json:"better,omitempty"`
	Count      int                `json:"count"`
	MedianMs   map[string]float64 `json:"medianMs"`
	Hysteresis string             `json:"hysteresis"`
}

// ReportAnswer is what a device learns from its report: its home and
// whether that just changed.
type ReportAnswer struct {
	Home
	Moved bool `json:"moved"`
	// Streak is how many consecutive reports favoured Better.
	Better string `json:"better,omitempty"`
	Streak int    `json:"streak,omitempty"`
	// Renew says the certificate the device reported with is not from the
	// CA that issues for its home region (a region with its own CA): it
	// should renew at its home's provision URL. Set by the device
	// listener, which knows the CAs.
	Renew bool `json:"renew,omitempty"`
}

// Report takes a provisioned device's fresh measurements. When another
// enabled region has been better than home by the hysteresis in enough
// consecutive reports, or home is no longer enabled, the device is
// re-homed (history event device.rehomed); a report that starts, extends
// or breaks a streak records device.region_streak; any other report
// writes nothing.
func (s *Service) Report(ctx context.Context, deviceID string, ms map[string]Measurement, actor string) (*ReportAnswer, error) {
	list, err := s.Regions(ctx)
	if err != nil {
		return nil, err
	}
	enabled := map[string]bool{}
	for _, g := range list {
		enabled[g.Name] = g.Status == store.RegionEnabled
	}
	medians := Medians(ms)
	for name := range medians {
		if !enabled[name] {
			delete(medians, name)
		}
	}
	ans := &ReportAnswer{}
	dev, err := s.st.UpdateDevice(ctx, deviceID, 0, actor, func(d *fleet.Device) (*store.Change, error) {
		home := d.Attributes[AttrHome]
		if !enabled[home] {
			// No home yet (provisioned before regions), or a home that
			// is draining, disabled or gone: place the device now.
			dec, err := s.alloc.Choose(ctx, Policy{Policy: PolicyLowestLatency}, list, Input{DeviceID: d.ID, Home: home, Measurements: ms})
			if err != nil {
				return nil, nil // nowhere to go: stay
			}
			ans.Moved = true
			SetHome(d, dec)
			cause := "drain"
			if home == "" {
				cause = "first-report"
			}
			return &store.Change{Type: EventRehomed, Data: rehomeData{From: home, To: dec.Name, Cause: cause, Decision: dec}}, nil
		}
		prev := ParseStreak(d.Attributes[AttrStreak])
		next, move := s.hyst.Step(home, medians, prev)
		if move {
			ans.Moved = true
			dec := &Decision{Policy: PolicyLowestLatency, DecidedBy: PolicyLowestLatency, Name: next.Region, MedianMs: medians,
				Reason: fmt.Sprintf("better than %s in %d consecutive reports", home, next.Count)}
			SetHome(d, dec)
			return &store.Change{Type: EventRehomed, Data: rehomeData{From: home, To: next.Region, Cause: "report", Decision: dec, Hysteresis: s.hyst.String()}}, nil
		}
		ans.Better, ans.Streak = next.Region, next.Count
		if next == prev {
			return nil, nil
		}
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		if next.Count == 0 {
			delete(d.Attributes, AttrStreak)
		} else {
			d.Attributes[AttrStreak] = next.String()
		}
		return &store.Change{Type: EventStreak, Data: streakData{Home: home, Better: next.Region, Count: next.Count, MedianMs: medians, Hysteresis: s.hyst.String()}}, nil
	})
	if err != nil {
		return nil, err
	}
	h, _, err := s.HomeOf(ctx, dev)
	if err != nil {
		return nil, err
	}
	ans.Home = h
	if ans.Moved {
		s.log.InfoContext(ctx, "device re-homed", "device", deviceID, "to", h.Region)
	}
	return ans, nil
}

// Move is one device a drain moved.
type Move struct {
	DeviceID string `json:"deviceId"`
	From     string `json:"from"`
	To       string `json:"to"`
	DecideBy string `json:"decidedBy"`
}

// DrainBatch moves up to limit devices whose home is region name (which
// should be draining or disabled: it is no candidate) to the region its
// devices' last measurements favour (lowest-latency, falling back to
// weighted), each in its own transaction with a device.rehomed event. It
// returns the moves and how many devices still name the region. Calling it
// again continues; a device moved by a concurrent report is skipped.
func (s *Service) DrainBatch(ctx context.Context, name string, limit int, actor string) ([]Move, int, error) {
	s.Forget()
	list, err := s.Regions(ctx)
	if err != nil {
		return nil, 0, err
	}
	filter := store.DeviceFilter{Attributes: map[string]string{AttrHome: name}}
	devs, _, err := s.st.ListDevices(ctx, filter, "", limit)
	if err != nil {
		return nil, 0, fmt.Errorf("region: devices of %s: %w", name, err)
	}
	moves := []Move{}
	for _, dev := range devs {
		var mv *Move
		_, err := s.st.UpdateDevice(ctx, dev.ID, 0, actor, func(d *fleet.Device) (*store.Change, error) {
			if d.Attributes[AttrHome] != name {
				return nil, nil
			}
			dec, err := s.alloc.Choose(ctx, Policy{Policy: PolicyLowestLatency}, list, Input{DeviceID: d.ID, Measurements: storedMedians(d)})
			if err != nil {
				return nil, err
			}
			if dec.Name == name {
				return nil, nil // the region is enabled again
			}
			SetHome(d, dec)
			mv = &Move{DeviceID: d.ID, From: name, To: dec.Name, DecideBy: dec.DecidedBy}
			return &store.Change{Type: EventRehomed, Data: rehomeData{From: name, To: dec.Name, Cause: "drain", Decision: dec}}, nil
		})
		if errors.Is(err, ErrNoRegion) {
			return moves, 0, fmt.Errorf("region: no other region is enabled to move the devices of %s to: %w", name, err)
		}
		if err != nil {
			return moves, 0, err
		}
		if mv != nil {
			moves = append(moves, *mv)
		}
	}
	remaining := 0
	err = s.st.EachDevice(ctx, filter, func(*fleet.Device) error { remaining++; return nil })
	return moves, remaining, err
}
