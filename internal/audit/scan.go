package audit

import (
	"context"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Store is what the audit reads and records; *store.Store implements it.
type Store interface {
	EachCertificate(ctx context.Context, fn func(*store.Certificate) error) error
	SharedKeys(ctx context.Context) (map[string][]string, error)
	EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error
	BOMs(ctx context.Context) (map[string][]byte, error)
	AllPresence(ctx context.Context) ([]store.Presence, error)
	EachMeterRow(ctx context.Context, since time.Time, fn func(node string, w store.MeterWindow) error) error
	BirthRequests(ctx context.Context, since time.Time) ([]store.BirthRequest, error)
	ChainHeads(ctx context.Context) (map[string]store.ChainHead, error)
	EachChain(ctx context.Context, fn func(subject string, events []fleet.Event) error) error
	ListTemplates(ctx context.Context) ([]store.TemplateRecord, error)
	ListCAs(ctx context.Context, f store.CAFilter) ([]store.CA, error)
	Advisories(ctx context.Context, withDocs bool) ([]store.Advisory, error)

	StartAuditRun(ctx context.Context, run *store.AuditRun) error
	FinishAuditRun(ctx context.Context, runID string, checks []string, found []store.Finding) (*store.AuditRun, error)
	FailAuditRun(ctx context.Context, id string, cause error) error
	AuditRunProgress(ctx context.Context, id string, p store.AuditProgress) error
}

// scan is one run's view of the fleet. Each part is read the first time a
// check asks for it, so a run of a few checks reads only what they need,
// and checks that share a part read it once.
type scan struct {
	st     Store
	p      Params
	now    time.Time
	vulns  *vulnSource
	loaded map[string]error

	devices  map[string]deviceInfo
	opCerts  map[string]store.Certificate // each device's newest unrevoked operational certificate
	presence map[string]store.Presence
	meter    map[string]*meterSummary
	nodes    map[string]*nodeSummary
}

// deviceInfo is what checks need of a device beyond certificates.
type deviceInfo struct {
	state          fleet.State
	stateChangedAt time.Time
	firmware       []fleet.FirmwareVersion
	bomSHA256      string
}

// meterSummary sums a device's metering rows over the lookback.
type meterSummary struct {
	takeovers, revokedAttempts int64
	// conflicts are windows in which the device was live from two places.
	conflicts []conflict
}

// conflict is one window in which one device id was live on several
// nodes, or from several addresses with a session taken over.
type conflict struct {
	Window    time.Time `json:"window"`
	Nodes     []string  `json:"nodes"`
	SourceIPs []string  `json:"sourceIps"`
	Takeovers int64     `json:"takeovers"`
}

// nodeSummary is what one node metered over the lookback.
type nodeSummary struct {
	rows, connects, traffic int64
	// lastSeen is the latest presence the node wrote.
	lastSeen time.Time
	sessions int
}

// once runs load the first time part is asked for and remembers its error.
func (sc *scan) once(part string, load func() error) error {
	if err, done := sc.loaded[part]; done {
		return err
	}
	err := load()
	sc.loaded[part] = err
	return err
}

// loadDevices reads every device's state.
func (sc *scan) loadDevices(ctx context.Context) error {
	return sc.once("devices", func() error {
		sc.devices = map[string]deviceInfo{}
		return sc.st.EachAuditDevice(ctx, func(d store.AuditDevice) error {
			sc.devices[d.ID] = deviceInfo{state: d.State, stateChangedAt: d.StateChangedAt, firmware: d.Firmware, bomSHA256: d.BOMSHA256}
			return nil
		})
	})
}

// loadOpCerts finds each device's newest unrevoked operational certificate.
func (sc *scan) loadOpCerts(ctx context.Context) error {
	return sc.once("opcerts", func() error {
		sc.opCerts = map[string]store.Certificate{}
		return sc.st.EachCertificate(ctx, func(c *store.Certificate) error {
			if c.Kind != store.CertOperational || c.RevokedAt != nil {
				return nil
			}
			if cur, ok := sc.opCerts[c.DeviceID]; !ok || c.NotBefore.After(cur.NotBefore) ||
				c.NotBefore.Equal(cur.NotBefore) && c.CreatedAt.After(cur.CreatedAt) {
				c.CertPEM = "" // not needed; keeps the map small
				sc.opCerts[c.DeviceID] = *c
			}
			return nil
		})
	})
}

// loadPresence reads every device's presence.
func (sc *scan) loadPresence(ctx context.Context) error {
	return sc.once("presence", func() error {
		ps, err := sc.st.AllPresence(ctx)
		if err != nil {
			return err
		}
		sc.presence = make(map[string]store.Presence, len(ps))
		for _, p := range ps {
			sc.presence[p.DeviceID] = p
		}
		return nil
	})
}

// loadMeter sums the metering rows of the lookback per device and per
// node, and finds the windows in which a device was live from two places.
func (sc *scan) loadMeter(ctx context.Context) error {
	return sc.once("meter", func() error {
		type windowKey struct {
			dev   string
			start time.Time
		}
		type windowSeen struct {
			nodes     []string
			ips       []string
			takeovers int64
		}
		windows := map[windowKey]*windowSeen{}
		sc.meter = map[string]*meterSummary{}
		sc.nodes = map[string]*nodeSummary{}
		err := sc.st.EachMeterRow(ctx, sc.now.Add(-sc.p.MeteringLookback), func(node string, w store.MeterWindow) error {
			m := sc.meter[w.DeviceID]
			if m == nil {
				m = &meterSummary{}
				sc.meter[w.DeviceID] = m
			}
			m.takeovers += w.Takeovers
			m.revokedAttempts += w.RevokedAttempts
			n := sc.node(node)
			n.rows++
			n.connects += w.Connects
			n.traffic += w.MsgsIn + w.MsgsOut + w.BytesIn + w.BytesOut
			if w.Connects == 0 {
				return nil
			}
			k := windowKey{w.DeviceID, w.Start}
			ws := windows[k]
			if ws == nil {
				ws = &windowSeen{}
				windows[k] = ws
			}
			ws.nodes = appendNew(ws.nodes, node)
			for _, ip := range w.SourceIPs {
				ws.ips = appendNew(ws.ips, ip)
			}
			ws.takeovers += w.Takeovers
			return nil
		})
		if err != nil {
			return err
		}
		for k, ws := range windows {
			if len(ws.nodes) > 1 || len(ws.ips) > 1 && ws.takeovers > 0 {
				m := sc.meter[k.dev]
				m.conflicts = append(m.conflicts, conflict{Window: k.start, Nodes: ws.nodes, SourceIPs: ws.ips, Takeovers: ws.takeovers})
			}
		}
		if err := sc.loadPresence(ctx); err != nil {
			return err
		}
		since := sc.now.Add(-sc.p.MeteringLookback)
		for _, p := range sc.presence {
			if p.Node == "" || p.LastSeen.Before(since) {
				continue
			}
			n := sc.node(p.Node)
			n.sessions++
			if p.LastSeen.After(n.lastSeen) {
				n.lastSeen = p.LastSeen
			}
		}
		return nil
	})
}

func (sc *scan) node(name string) *nodeSummary {
	n := sc.nodes[name]
	if n == nil {
		n = &nodeSummary{}
		sc.nodes[name] = n
	}
	return n
}

func appendNew(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
