package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/store"
)

// Observer watches devices' behaviour as the gateway sees it. Its methods
// are called on the gateway's own goroutines and must return quickly.
type Observer interface {
	// ObserveWindow receives a device's metering window once it closed
	// on this node (within about two flush intervals of its end).
	ObserveWindow(w store.MeterWindow)
	// ObserveReport receives a valid device report as it arrives.
	ObserveReport(deviceID string, at time.Time, r *Report)
}

// MeterSink stores metering windows; *store.Store implements it.
type MeterSink interface {
	SaveMeterWindows(ctx context.Context, node string, ws []store.MeterWindow) error
}

// DefaultMeterWindow is the length of a metering window unless told.
const DefaultMeterWindow = 5 * time.Minute

// Metering limits.
const (
	// meterFlush is how often open windows are saved, so a node that
	// dies loses at most this much of its counts.
	meterFlush = 10 * time.Second
	// meterSoon is how soon windows are saved after a session ends; ends
	// that come together (a fleet going away) share one save.
	meterSoon = time.Second
	// Sets are capped per window: they describe a device's behaviour, and
	// a device must not grow them without bound.
	maxWindowTopics = 64
	maxWindowIPs    = 16
)

// deviceMeter counts one device's current window on this node.
type deviceMeter struct {
	mu  sync.Mutex
	cur store.MeterWindow
	// closed are finished windows not saved yet.
	closed []store.MeterWindow
	// dirty is whether cur changed since it was last saved.
	dirty bool
}

// meter keeps per-device windows and the fleet aggregates.
type meter struct {
	window time.Duration
	now    func() time.Time
	fleet  *fleetMetrics
	// observe, when set, receives each window once it closed.
	observe func(store.MeterWindow)

	mu      sync.Mutex
	devices map[string]*deviceMeter
}

func newMeter(window time.Duration, fleet *fleetMetrics) *meter {
	return &meter{window: window, now: time.Now, fleet: fleet, devices: map[string]*deviceMeter{}}
}

// count applies fn to device id's current window. An empty id (a birth
// identity, which names no device record) is not metered per device.
func (m *meter) count(id string, fn func(w *store.MeterWindow)) {
	if m == nil || id == "" {
		return
	}
	m.mu.Lock()
	dm, ok := m.devices[id]
	if !ok {
		dm = &deviceMeter{}
		m.devices[id] = dm
	}
	m.mu.Unlock()
	now := m.now()
	dm.mu.Lock()
	defer dm.mu.Unlock()
	start := now.Truncate(m.window)
	if !dm.cur.Start.Equal(start) {
		if dm.cur.DeviceID != "" {
			dm.closed = append(dm.closed, dm.cur)
		}
		dm.cur = store.MeterWindow{DeviceID: id, Start: start.UTC(), Seconds: int64(m.window / time.Second)}
	}
	fn(&dm.cur)
	dm.dirty = true
}

// collect takes every window changed since the last collect, and forgets
// devices with nothing left to save whose window has ended.
func (m *meter) collect() []store.MeterWindow {
	now := m.now()
	var out, ended []store.MeterWindow
	m.mu.Lock()
	for id, dm := range m.devices {
		dm.mu.Lock()
		out = append(out, dm.closed...)
		ended = append(ended, dm.closed...)
		dm.closed = nil
		if dm.dirty {
			out = append(out, cloneWindow(dm.cur))
			dm.dirty = false
		} else if now.Sub(dm.cur.Start) >= m.window {
			delete(m.devices, id)
			ended = append(ended, dm.cur)
		}
		dm.mu.Unlock()
	}
	m.mu.Unlock()
	// The observer runs without the meter's locks: counting every packet
	// of every device waits on them.
	if m.observe != nil {
		for _, w := range ended {
			m.observe(w)
		}
	}
	return out
}

// cloneWindow copies a window's sets, so a saved copy does not share them
// with the live one.
func cloneWindow(w store.MeterWindow) store.MeterWindow {
	w.Topics = slices.Clone(w.Topics)
	w.SourceIPs = slices.Clone(w.SourceIPs)
	if w.Disconnects != nil {
		d := make(map[string]int64, len(w.Disconnects))
		for k, v := range w.Disconnects {
			d[k] = v
		}
		w.Disconnects = d
	}
	return w
}

// addCapped adds s to set unless present or the set is full.
func addCapped(set []string, s string, limit int) []string {
	if len(set) >= limit || slices.Contains(set, s) {
		return set
	}
	return append(set, s)
}

// What the gateway meters. Each updates the device's window and the fleet
// aggregates together.

// attempt counts a connection attempt from remote by the device its
// certificate claims (verified or not: an impersonation attempt is worth
// counting under the device it targets).
func (m *meter) attempt(id string, remote net.Addr, refused bool) {
	ip := hostOf(remote)
	m.count(id, func(w *store.MeterWindow) {
		w.Attempts++
		w.SourceIPs = addCapped(w.SourceIPs, ip, maxWindowIPs)
		if refused {
			w.AuthFailures++
		}
	})
	m.fleet.attempt(refused)
}

// refusedSession counts a verified device refused a session (client id,
// state or will topic).
func (m *meter) refusedSession(id string) {
	m.count(id, func(w *store.MeterWindow) { w.AuthFailures++ })
	m.fleet.refused.Inc()
}

// connected counts a session that went live, and whether it took over one.
func (m *meter) connected(id string, takeover bool) {
	m.count(id, func(w *store.MeterWindow) {
		w.Connects++
		if takeover {
			w.Takeovers++
		}
	})
	m.fleet.connects.Inc()
	if takeover {
		m.fleet.takeovers.Inc()
	}
}

// disconnected counts a session's end with its reason.
func (m *meter) disconnected(id, reason string) {
	m.count(id, func(w *store.MeterWindow) {
		if w.Disconnects == nil {
			w.Disconnects = map[string]int64{}
		}
		w.Disconnects[reason]++
	})
	m.fleet.disconnects.WithLabelValues(reason).Inc()
}

// denied counts a publish or subscription the policy refused.
func (m *meter) denied(id string) {
	m.count(id, func(w *store.MeterWindow) { w.AuthFailures++ })
	m.fleet.denied.Inc()
}

// published counts a PUBLISH the device sent, on its topic.
func (m *meter) published(id, topic string) {
	m.count(id, func(w *store.MeterWindow) {
		w.MsgsIn++
		w.Topics = addCapped(w.Topics, topic, maxWindowTopics)
	})
	m.fleet.msgsIn.Inc()
}

// delivered counts a PUBLISH sent to the device.
func (m *meter) delivered(id string) {
	m.count(id, func(w *store.MeterWindow) { w.MsgsOut++ })
	m.fleet.msgsOut.Inc()
}

// traffic counts bytes read from and written to a device's connection:
// MQTT bytes, before TLS.
func (m *meter) traffic(id string, in, out int64) {
	m.count(id, func(w *store.MeterWindow) {
		w.BytesIn += in
		w.BytesOut += out
	})
	m.fleet.bytesIn.Add(float64(in))
	m.fleet.bytesOut.Add(float64(out))
}

// report counts a device report, accepted or rejected.
func (m *meter) report(id string, ok bool) {
	m.count(id, func(w *store.MeterWindow) {
		w.Reports++
		if !ok {
			w.BadReports++
		}
	})
	m.fleet.report(ok)
}

// hostOf is the IP address of a remote address, without the port.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Disconnect reasons, as metered.
const (
	reasonClient    = "client"    // the client sent DISCONNECT
	reasonClosed    = "closed"    // the connection closed without DISCONNECT
	reasonTakeover  = "takeover"  // a new session of the same id replaced it
	reasonKeepalive = "keepalive" // the client went silent
	reasonShutdown  = "shutdown"  // the gateway stopped
	reasonError     = "error"     // a protocol or network error
)

// disconnectReason classifies why a session ended. enforced, when set, is
// the reason enforcement cut it off for.
func disconnectReason(cl *mqtt.Client, err error, enforced string) string {
	if enforced != "" {
		return enforced
	}
	cause := cl.StopCause()
	var ne net.Error
	switch {
	case errors.Is(cause, packets.ErrSessionTakenOver) || cl.IsTakenOver():
		return reasonTakeover
	case errors.Is(cause, packets.ErrServerShuttingDown):
		return reasonShutdown
	case errors.Is(cause, packets.ErrKeepAliveTimeout), errors.As(err, &ne) && ne.Timeout():
		return reasonKeepalive
	case err == nil, errors.Is(cause, packets.CodeDisconnect):
		return reasonClient
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return reasonClosed
	}
	return reasonError
}

// meterLoop saves changed windows every meterFlush, and meterSoon after a
// session ended, until ctx ends, then once more.
func (g *Gateway) meterLoop(ctx context.Context) {
	tick := time.NewTicker(meterFlush)
	defer tick.Stop()
	var soon <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			g.saveMeters(context.WithoutCancel(ctx))
			return
		case <-tick.C:
			g.saveMeters(ctx)
		case <-g.meterKick:
			if soon == nil {
				soon = time.After(meterSoon)
			}
		case <-soon:
			soon = nil
			g.saveMeters(ctx)
		}
	}
}

// kickMeters asks the meter loop to save soon; it never blocks.
func (g *Gateway) kickMeters() {
	select {
	case g.meterKick <- struct{}{}:
	default:
	}
}

// saveMeters writes the windows changed since the last save. Counts that
// fail to save are logged and dropped: they are statistics, and retrying
// a failing database every ten seconds must not grow memory.
func (g *Gateway) saveMeters(ctx context.Context) {
	ws := g.meter.collect()
	if len(ws) == 0 || g.meterSink == nil {
		return
	}
	if err := g.meterSink.SaveMeterWindows(ctx, g.node, ws); err != nil {
		g.log.WarnContext(ctx, "gateway: metering windows not saved", "windows", len(ws), "err", err)
	}
}
