package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fleetMetrics are the fleet-wide aggregates of metering, for Prometheus.
// They carry no device labels: per-device numbers live in the metering
// windows, and a label per device would grow the series without bound.
type fleetMetrics struct {
	registry *prometheus.Registry

	attempts    *prometheus.CounterVec
	refused     prometheus.Counter
	connects    prometheus.Counter
	takeovers   prometheus.Counter
	disconnects *prometheus.CounterVec
	denied      prometheus.Counter
	msgsIn      prometheus.Counter
	msgsOut     prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	reports     *prometheus.CounterVec
}

func newFleetMetrics(sessions func() float64) *fleetMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "muster", Subsystem: "gateway", Name: name, Help: help})
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "muster", Subsystem: "gateway", Name: name, Help: help}, []string{label})
	}
	m := &fleetMetrics{
		registry:    prometheus.NewRegistry(),
		attempts:    vec("connection_attempts_total", "TLS connection attempts, by result (accepted or refused at the handshake).", "result"),
		refused:     counter("sessions_refused_total", "Verified clients refused a session (client id, device state or will topic)."),
		connects:    counter("connects_total", "Sessions that went live."),
		takeovers:   counter("takeovers_total", "Sessions that took over a live session of the same client id."),
		disconnects: vec("disconnects_total", "Sessions ended, by reason.", "reason"),
		denied:      counter("authorization_failures_total", "Publishes and subscriptions the topic policy refused."),
		msgsIn:      counter("messages_in_total", "PUBLISH packets received from devices."),
		msgsOut:     counter("messages_out_total", "PUBLISH packets sent to devices."),
		bytesIn:     counter("bytes_in_total", "MQTT bytes received from devices."),
		bytesOut:    counter("bytes_out_total", "MQTT bytes sent to devices."),
		reports:     vec("reports_total", "Device metric reports, by result (accepted or rejected).", "result"),
	}
	m.registry.MustRegister(m.attempts, m.refused, m.connects, m.takeovers, m.disconnects, m.denied,
		m.msgsIn, m.msgsOut, m.bytesIn, m.bytesOut, m.reports,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "muster", Subsystem: "gateway", Name: "sessions", Help: "Live device sessions on this node."}, sessions))
	return m
}

func (m *fleetMetrics) attempt(refused bool) {
	m.attempts.WithLabelValues(result(!refused)).Inc()
}

func (m *fleetMetrics) report(ok bool) {
	m.reports.WithLabelValues(result(ok)).Inc()
}

func result(ok bool) string {
	if ok {
		return "accepted"
	}
	return "rejected"
}

// MetricsHandler serves the gateway's fleet aggregates in the Prometheus
// exposition format, for the node's /metrics.
func (g *Gateway) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(g.meter.fleet.registry, promhttp.HandlerOpts{})
}
