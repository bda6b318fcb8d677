package detect

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Gateway metrics: the counts of one metering window (docs/gateway.md).
const (
	MetricAttempts     = "connectionAttempts"
	MetricConnects     = "connects"
	MetricTakeovers    = "takeovers"
	MetricDisconnects  = "disconnects"
	MetricAuthFailures = "authorizationFailures"
	MetricMessagesIn   = "messagesIn"
	MetricMessagesOut  = "messagesOut"
	MetricBytesIn      = "bytesIn"
	MetricBytesOut     = "bytesOut"
	MetricTopics       = "topics"
	MetricSourceIPs    = "sourceIps"
)

// Report metrics: derived from one device-side report.
const (
	MetricReportListening    = "report.listeningPorts"
	MetricReportConnections  = "report.connections"
	MetricReportDestinations = "report.destinations"
	MetricReportRemotePorts  = "report.remotePorts"
	MetricReportBytesIn      = "report.bytesIn"
	MetricReportBytesOut     = "report.bytesOut"
	MetricReportPacketsIn    = "report.packetsIn"
	MetricReportPacketsOut   = "report.packetsOut"
	// MetricReportDomains is the distinct domain names of a report; only
	// reports that carry the field give it a datapoint.
	MetricReportDomains = "report.domains"
	// CustomPrefix starts the name of a device-defined metric.
	CustomPrefix = "custom."
)

// GatewayMetrics and ReportMetrics list the metrics rules may name besides
// custom.NAME.
var (
	GatewayMetrics = []string{MetricAttempts, MetricConnects, MetricTakeovers, MetricDisconnects, MetricAuthFailures,
		MetricMessagesIn, MetricMessagesOut, MetricBytesIn, MetricBytesOut, MetricTopics, MetricSourceIPs}
	ReportMetrics = []string{MetricReportListening, MetricReportConnections, MetricReportDestinations, MetricReportRemotePorts,
		MetricReportBytesIn, MetricReportBytesOut, MetricReportPacketsIn, MetricReportPacketsOut, MetricReportDomains}
)

var customName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func validMetric(m string) bool {
	if name, ok := strings.CutPrefix(m, CustomPrefix); ok {
		return customName.MatchString(name)
	}
	return slices.Contains(GatewayMetrics, m) || slices.Contains(ReportMetrics, m)
}

// Observation is what the engine evaluates: the datapoints one device
// produced at one time (a metering window, or a device report), with the
// addresses, domain names and firmware versions seen in it.
type Observation struct {
	DeviceID string
	// Cohort groups devices whose fleet-relative statistics are shared;
	// Muster uses the device's model.
	Cohort    string
	At        time.Time
	Values    []Value
	Addresses []Address
	// Domains are the names a device reported resolving or connecting to,
	// lower case without a trailing dot, each once.
	Domains  []string
	Firmware []Firmware
}

// Value is one datapoint.
type Value struct {
	Metric string
	Value  float64
}

// Directions of an address.
const (
	DirectionSource      = "source"
	DirectionDestination = "destination"
)

// Address is a network address the device was seen with: the source of
// its connections to the gateway, or a destination in its own report.
type Address struct {
	IP        netip.Addr
	Direction string
}

// Firmware is a firmware component's version as the device reports it.
type Firmware struct {
	Component string `json:"component"`
	Version   string `json:"version"`
}
