package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/dnsname"
	"github.com/muster-iot/muster/internal/pki"
)

// Report is a device's own account of its network behaviour, published as
// JSON on devices/{id}/metrics. docs/gateway.md documents the schema.
type Report struct {
	// Version is the schema version; 1 is the only one.
	Version int `json:"version"`
	// Timestamp is when the device took the measurements; optional.
	Timestamp *time.Time `json:"timestamp,omitempty"`
	// ListeningPorts are the sockets the device accepts connections on.
	ListeningPorts []ListeningPort `json:"listeningPorts,omitempty"`
	// Connections are its established connections.
	Connections []Connection `json:"connections,omitempty"`
	// DestinationIPs are the addresses it sent traffic to.
	DestinationIPs []string `json:"destinationIps,omitempty"`
	// Domains are the names it resolved or connected to since its last
	// report; ParseReport leaves them in lower case without a trailing
	// dot. Absent (nil) means the device does not report names, which is
	// not the same as an empty list.
	Domains []string `json:"domains,omitempty"`
	// Network counts its traffic since boot.
	Network *NetworkCounters `json:"network,omitempty"`
	// Custom holds device-defined metrics by name.
	Custom map[string]float64 `json:"custom,omitempty"`
	// Firmware lists the firmware versions the device runs, so that a
	// downgrade can be detected.
	Firmware []FirmwareVersion `json:"firmware,omitempty"`
}

// FirmwareVersion is a firmware component's version as the device runs it.
type FirmwareVersion struct {
	Component string `json:"component"`
	Version   string `json:"version"`
}

// ListeningPort is a listening socket.
type ListeningPort struct {
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	Address  string `json:"address,omitempty"`
}

// Connection is an established connection.
type Connection struct {
	Protocol      string `json:"protocol"`
	LocalPort     int    `json:"localPort"`
	RemoteAddress string `json:"remoteAddress"`
	RemotePort    int    `json:"remotePort"`
}

// NetworkCounters are interface totals.
type NetworkCounters struct {
	BytesIn    uint64 `json:"bytesIn"`
	BytesOut   uint64 `json:"bytesOut"`
	PacketsIn  uint64 `json:"packetsIn"`
	PacketsOut uint64 `json:"packetsOut"`
}

// Report limits: a report describes one device, and a device must not be
// able to make the gateway do unbounded work.
const (
	MaxReportBytes = 64 << 10
	maxReportItems = 1024
	maxCustom      = 64
	maxFirmware    = 16
	// maxDomains bounds the names of one report, each matched against
	// every parent domain in the intelligence feeds.
	maxDomains = 256
	// maxClockAhead tolerates device clocks running a little fast.
	maxClockAhead = 5 * time.Minute
)

// ParseReport decodes and validates a report. The error says what is wrong
// in terms the device's developer can act on.
func ParseReport(payload []byte, now time.Time) (*Report, error) {
	if len(payload) > MaxReportBytes {
		return nil, fmt.Errorf("report is %d bytes, at most %d allowed", len(payload), MaxReportBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a report: trailing data after the object")
	}
	if r.Version != 1 {
		return nil, fmt.Errorf("version must be 1, got %d", r.Version)
	}
	if r.Timestamp != nil && r.Timestamp.After(now.Add(maxClockAhead)) {
		return nil, fmt.Errorf("timestamp %s is in the future", r.Timestamp.UTC().Format(time.RFC3339))
	}
	if len(r.ListeningPorts) > maxReportItems || len(r.Connections) > maxReportItems || len(r.DestinationIPs) > maxReportItems {
		return nil, fmt.Errorf("at most %d listening ports, connections and destination IPs each", maxReportItems)
	}
	for i, p := range r.ListeningPorts {
		if err := checkSocket(p.Protocol, p.Port, p.Address, true); err != nil {
			return nil, fmt.Errorf("listeningPorts[%d]: %w", i, err)
		}
	}
	for i, c := range r.Connections {
		if err := checkSocket(c.Protocol, c.LocalPort, "", true); err != nil {
			return nil, fmt.Errorf("connections[%d]: %w", i, err)
		}
		if err := checkSocket(c.Protocol, c.RemotePort, c.RemoteAddress, false); err != nil {
			return nil, fmt.Errorf("connections[%d]: remote: %w", i, err)
		}
	}
	for i, ip := range r.DestinationIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("destinationIps[%d]: %q is not an IP address", i, ip)
		}
	}
	if len(r.Domains) > maxDomains {
		return nil, fmt.Errorf("at most %d domains, got %d", maxDomains, len(r.Domains))
	}
	for i, d := range r.Domains {
		name, err := dnsname.Normalize(d)
		if err != nil {
			// %.80q: a rejection never echoes a whole oversized name.
			return nil, fmt.Errorf("domains[%d]: %.80q is not a domain name: %w", i, d, err)
		}
		r.Domains[i] = name
	}
	if len(r.Custom) > maxCustom {
		return nil, fmt.Errorf("at most %d custom metrics, got %d", maxCustom, len(r.Custom))
	}
	for name, v := range r.Custom {
		if !safeID(name) {
			return nil, fmt.Errorf("custom metric name %q: use letters, digits, '-', '_' and '.'", name)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("custom metric %q is not a finite number", name)
		}
	}
	if len(r.Firmware) > maxFirmware {
		return nil, fmt.Errorf("at most %d firmware components, got %d", maxFirmware, len(r.Firmware))
	}
	for i, fw := range r.Firmware {
		if !safeID(fw.Component) {
			return nil, fmt.Errorf("firmware[%d]: component %q: use letters, digits, '-', '_' and '.'", i, fw.Component)
		}
		if !safeID(fw.Version) {
			return nil, fmt.Errorf("firmware[%d]: version %q: use letters, digits, '-', '_' and '.' (e.g. 1.4.2)", i, fw.Version)
		}
	}
	return &r, nil
}

// checkSocket validates a protocol, port and (optional when optionalAddr)
// IP address.
func checkSocket(protocol string, port int, addr string, optionalAddr bool) error {
	if protocol != "tcp" && protocol != "udp" {
		return fmt.Errorf("protocol must be \"tcp\" or \"udp\", got %q", protocol)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is outside 1-65535", port)
	}
	if addr == "" && optionalAddr {
		return nil
	}
	if _, err := netip.ParseAddr(addr); err != nil {
		return fmt.Errorf("%q is not an IP address", addr)
	}
	return nil
}

// A device publishes its reports on devices/{id}/{reportLeaf}, and hears
// about a bad one on that topic plus rejectedSuffix.
const (
	reportLeaf     = "metrics"
	rejectedSuffix = "/rejected"
)

// reportRejection is the answer on devices/{id}/metrics/rejected.
type reportRejection struct {
	Reason string `json:"reason"`
}

// OnPublish implements mqtt.Hook. A birth identity's provisioning request
// goes to the Provisioner, never to subscribers. A device's report is
// validated and metered; a bad one is not delivered, and the device is
// told why on its rejected topic.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	dc := connOf(cl)
	if dc == nil {
		return pk, nil
	}
	if dc.identity.Kind == pki.IdentityBirth {
		if template, ok := provisionTemplate(pk.TopicName); ok {
			h.g.provision(cl, dc, template, pk.Payload)
		}
		return pk, packets.CodeSuccessIgnore // acknowledged, never routed
	}
	if dc.identity.DeviceID == "" || pk.TopicName != "devices/"+dc.identity.DeviceID+"/"+reportLeaf {
		return pk, nil
	}
	now := time.Now()
	report, err := ParseReport(pk.Payload, now)
	h.g.meter.report(dc.identity.DeviceID, err == nil)
	if err == nil {
		if h.g.observer != nil {
			h.g.observer.ObserveReport(dc.identity.DeviceID, now, report)
		}
		return pk, nil
	}
	if perr := h.g.broker.Publish(pk.TopicName+rejectedSuffix, rejection(err.Error()), false, 1); perr != nil {
		h.g.log.Warn("gateway: cannot answer a rejected report", "device", dc.identity.DeviceID, "err", perr)
	}
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, packets.ErrPayloadFormatInvalid // a PUBACK that says so
	}
	return pk, packets.CodeSuccessIgnore // acknowledged, not delivered
}
