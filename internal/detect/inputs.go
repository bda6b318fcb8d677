package detect

import (
	"net/netip"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
)

// FromWindow turns a gateway metering window into an observation at the
// window's end: one datapoint per gateway metric, and its source
// addresses for intelligence matching.
func FromWindow(w store.MeterWindow, cohort string) Observation {
	var disc int64
	for _, n := range w.Disconnects {
		disc += n
	}
	o := Observation{
		DeviceID: w.DeviceID, Cohort: cohort, At: w.Start.Add(time.Duration(w.Seconds) * time.Second),
		Values: []Value{
			{MetricAttempts, float64(w.Attempts)}, {MetricConnects, float64(w.Connects)},
			{MetricTakeovers, float64(w.Takeovers)}, {MetricDisconnects, float64(disc)},
			{MetricAuthFailures, float64(w.AuthFailures)}, {MetricMessagesIn, float64(w.MsgsIn)},
			{MetricMessagesOut, float64(w.MsgsOut)}, {MetricBytesIn, float64(w.BytesIn)},
			{MetricBytesOut, float64(w.BytesOut)}, {MetricTopics, float64(len(w.Topics))},
			{MetricSourceIPs, float64(len(w.SourceIPs))},
		},
	}
	for _, s := range w.SourceIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			o.Addresses = append(o.Addresses, Address{IP: ip.Unmap(), Direction: DirectionSource})
		}
	}
	return o
}

// Reports turns device reports into observations. Reports carry interface
// counters since boot, so it remembers each device's last counters and
// reports the difference; a counter that went down (a reboot) counts from
// zero. It is safe for concurrent use.
type Reports struct {
	mu   sync.Mutex
	last map[string]gateway.NetworkCounters
}

// NewReports returns an empty converter.
func NewReports() *Reports { return &Reports{last: map[string]gateway.NetworkCounters{}} }

// Observation converts one report of a device received at at. The first
// report of a device carries no traffic datapoints: there is nothing to
// take the difference from. Domains come as ParseReport left them
// (validated, lower case); a report without the field gives no
// report.domains datapoint, so devices that never report names do not
// learn a baseline of zero.
func (rs *Reports) Observation(deviceID, cohort string, at time.Time, r *gateway.Report) Observation {
	if r.Timestamp != nil && !r.Timestamp.IsZero() {
		at = *r.Timestamp
	}
	o := Observation{DeviceID: deviceID, Cohort: cohort, At: at}
	dests := map[netip.Addr]struct{}{}
	ports := map[int]struct{}{}
	for _, s := range r.DestinationIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			dests[ip.Unmap()] = struct{}{}
		}
	}
	for _, c := range r.Connections {
		if ip, err := netip.ParseAddr(c.RemoteAddress); err == nil {
			dests[ip.Unmap()] = struct{}{}
		}
		ports[c.RemotePort] = struct{}{}
	}
	for ip := range dests {
		o.Addresses = append(o.Addresses, Address{IP: ip, Direction: DirectionDestination})
	}
	o.Values = append(o.Values,
		Value{MetricReportListening, float64(len(r.ListeningPorts))},
		Value{MetricReportConnections, float64(len(r.Connections))},
		Value{MetricReportDestinations, float64(len(dests))},
		Value{MetricReportRemotePorts, float64(len(ports))},
	)
	if n := r.Network; n != nil {
		rs.mu.Lock()
		prev, seen := rs.last[deviceID]
		rs.last[deviceID] = *n
		rs.mu.Unlock()
		if seen {
			o.Values = append(o.Values,
				Value{MetricReportBytesIn, delta(n.BytesIn, prev.BytesIn)},
				Value{MetricReportBytesOut, delta(n.BytesOut, prev.BytesOut)},
				Value{MetricReportPacketsIn, delta(n.PacketsIn, prev.PacketsIn)},
				Value{MetricReportPacketsOut, delta(n.PacketsOut, prev.PacketsOut)},
			)
		}
	}
	for name, v := range r.Custom {
		o.Values = append(o.Values, Value{CustomPrefix + name, v})
	}
	if r.Domains != nil {
		seen := make(map[string]struct{}, len(r.Domains))
		for _, name := range r.Domains {
			if _, dup := seen[name]; !dup {
				seen[name] = struct{}{}
				o.Domains = append(o.Domains, name)
			}
		}
		o.Values = append(o.Values, Value{MetricReportDomains, float64(len(o.Domains))})
	}
	for _, fw := range r.Firmware {
		o.Firmware = append(o.Firmware, Firmware{Component: fw.Component, Version: fw.Version})
	}
	return o
}

// delta is cur-prev for a counter, or cur when the counter restarted.
func delta(cur, prev uint64) float64 {
	if cur < prev {
		return float64(cur)
	}
	return float64(cur - prev)
}
