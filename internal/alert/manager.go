// Package alert turns detection findings into alerts: it deduplicates
// them in the store, applies the mitigations rules ask for, and delivers
// alert events to webhooks (signed, retried), to operators over MQTT and to
// server-sent-event streams. See docs/detection.md.
package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Store is what the manager keeps alerts and actions in, and changes
// devices through; *store.Store implements it.
type Store interface {
	RaiseAlert(ctx context.Context, a store.Alert) (*store.Alert, bool, error)
	GetAlert(ctx context.Context, id string) (*store.Alert, error)
	AcknowledgeAlert(ctx context.Context, id, actor string) (*store.Alert, error)
	ResolveAlert(ctx context.Context, id, actor, resolution string) (*store.Alert, error)
	RecordAlertAction(ctx context.Context, a store.AlertAction) (*store.AlertAction, error)
	GetAlertAction(ctx context.Context, id string) (*store.AlertAction, error)
	MarkActionReverted(ctx context.Context, id, actor string) (*store.AlertAction, error)
	AlertActions(ctx context.Context, alertID string) ([]store.AlertAction, error)
	UpdateDevice(ctx context.Context, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*store.Change, error)) (*fleet.Device, error)
	RecordDeviceEvent(ctx context.Context, deviceID, actor string, ch store.Change) error
}

// Revoker revokes a device's certificates; the node's revocation service,
// so the gateway cuts the device off at once.
type Revoker interface {
	RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error)
}

// Rotator tells a device to renew its certificate (the gateway's rotate
// command).
type Rotator interface {
	Rotate(ctx context.Context, deviceID, reason string) (bool, error)
}

// Broadcaster publishes to a group's broadcast topics on the gateway.
type Broadcaster interface {
	Broadcast(ctx context.Context, group, topic string, payload []byte, retain bool) error
}

// OperatorsGroup is the inventory group whose members (operator consoles
// holding operational certificates) receive alerts over MQTT, on
// fleet/muster-operators/alerts/{severity}/{deviceId}.
const OperatorsGroup = "muster-operators"

// DetectorActor is the actor of everything the detector does by itself.
const DetectorActor = "detector"

// Config configures a Manager.
type Config struct {
	Store Store
	// Revoker, Rotator and Broadcaster are optional; without them the
	// revoke and rotate actions fail (recorded as failed) and no alert
	// goes out over MQTT.
	Revoker     Revoker
	Rotator     Rotator
	Broadcaster Broadcaster
	// Node names this node on the alerts it raises.
	Node   string
	Logger *slog.Logger
	// Queue bounds the findings waiting to be recorded; default 4096.
	Queue int
}

// Manager records findings as alerts and acts on them.
type Manager struct {
	store   Store
	revoker Revoker
	rotator Rotator
	bcast   Broadcaster
	node    string
	log     *slog.Logger
	hub     *Hub
	queue   chan detect.Finding
	// Dropped counts findings lost because the queue was full.
	dropped atomic.Int64
	// changes holds "id/state" of the alert changes this node announced
	// itself, until Follow has seen them (see changedHere).
	changes sync.Map
}

// New returns a Manager; Run records queued findings.
func New(cfg Config) *Manager {
	m := &Manager{store: cfg.Store, revoker: cfg.Revoker, rotator: cfg.Rotator, bcast: cfg.Broadcaster,
		node: cfg.Node, log: cfg.Logger, hub: NewHub()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Queue
	if n <= 0 {
		n = 4096
	}
	m.queue = make(chan detect.Finding, n)
	return m
}

// Hub is where alert events are published for streams.
func (m *Manager) Hub() *Hub { return m.hub }

// Enqueue hands a finding to Run without blocking: the detector runs on
// the gateway's goroutines. When the queue is full the finding is dropped,
// logged and counted; the rule fires again on its next streak.
func (m *Manager) Enqueue(f detect.Finding) {
	select {
	case m.queue <- f:
	default:
		if m.dropped.Add(1)%100 == 1 {
			m.log.Warn("alert: queue full, findings dropped", "dropped", m.dropped.Load())
		}
	}
}

// Dropped is how many findings were dropped because the queue was full.
func (m *Manager) Dropped() int64 { return m.dropped.Load() }

// Run records queued findings until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-m.queue:
			if _, _, err := m.Raise(ctx, f); err != nil {
				m.log.ErrorContext(ctx, "alert: cannot record a finding", "rule", f.RuleID, "device", f.DeviceID, "err", err)
			}
		}
	}
}

// dedupKey is what makes two findings the same alert: the rule and the
// device, and for an intelligence match the feed and the address or domain
// name (never both; an IP address is never a domain name).
func dedupKey(f detect.Finding) string {
	k := f.RuleID + "/" + f.DeviceID
	if f.Evidence.Indicator != nil {
		k += "/" + f.Evidence.Indicator.Feed + "/" + f.Evidence.Address + f.Evidence.Domain
	}
	return k
}

// Summary is a one-line description of a finding.
func Summary(f detect.Finding) string {
	e := f.Evidence
	switch {
	case e.Indicator != nil && e.Domain != "":
		return fmt.Sprintf("%s domain %s matches %s indicator %s", e.Direction, e.Domain, e.Indicator.Feed, e.Indicator.Indicator)
	case e.Indicator != nil:
		return fmt.Sprintf("%s address %s matches %s indicator %s", e.Direction, e.Address, e.Indicator.Feed, e.Indicator.Indicator)
	case e.Component != "":
		return fmt.Sprintf("firmware %s went from %s down to %s", e.Component, e.From, e.To)
	case f.Kind == detect.KindAnomaly:
		var ms []string
		for _, c := range e.Contributors {
			ms = append(ms, fmt.Sprintf("%s %.4g (z %.1f)", c.Metric, c.Value, c.Z))
		}
		return fmt.Sprintf("anomaly score %.1f: %s", e.Score, strings.Join(ms, ", "))
	case e.Percentile > 0:
		return fmt.Sprintf("%s %.4g %s %.4g (%s × p%g)", e.Metric, e.Value, e.Op, e.Threshold, f.Kind, e.Percentile)
	}
	return fmt.Sprintf("%s %.4g %s %.4g", e.Metric, e.Value, e.Op, e.Threshold)
}

// Raise records a finding as an alert (or a new hit of the live alert it
// duplicates). A new alert is published and, when its rule says so, its
// mitigations are applied.
func (m *Manager) Raise(ctx context.Context, f detect.Finding) (*store.Alert, bool, error) {
	ev, err := json.Marshal(f.Evidence)
	if err != nil {
		return nil, false, err
	}
	actions := make([]string, len(f.Actions))
	for i, a := range f.Actions {
		actions[i] = string(a)
	}
	a, created, err := m.store.RaiseAlert(ctx, store.Alert{DedupKey: dedupKey(f), RuleID: f.RuleID, DeviceID: f.DeviceID,
		Severity: string(f.Severity), Summary: Summary(f), Evidence: ev, Actions: actions, Node: m.node})
	if err != nil {
		return nil, false, err
	}
	if !created {
		return a, false, nil
	}
	m.log.InfoContext(ctx, "alert opened", "alert", a.ID, "rule", a.RuleID, "device", a.DeviceID, "severity", a.Severity, "summary", a.Summary)
	m.publish(ctx, store.EventAlertOpened, a)
	if f.Auto {
		for _, act := range f.Actions {
			if _, err := m.Apply(ctx, a.ID, act, DetectorActor, true); err != nil {
				m.log.ErrorContext(ctx, "alert: automatic mitigation failed", "alert", a.ID, "action", act, "err", err)
			}
		}
	}
	return a, true, nil
}

// Acknowledge acknowledges an alert and publishes the change.
func (m *Manager) Acknowledge(ctx context.Context, id, actor string) (*store.Alert, error) {
	a, err := m.store.AcknowledgeAlert(ctx, id, actor)
	if err == nil {
		m.noteChange(a.ID, a.State)
		m.publish(ctx, store.EventAlertAcknowledged, a)
	}
	return a, err
}

// Resolve resolves an alert and publishes the change.
func (m *Manager) Resolve(ctx context.Context, id, actor, resolution string) (*store.Alert, error) {
	a, err := m.store.ResolveAlert(ctx, id, actor, resolution)
	if err == nil {
		m.noteChange(a.ID, a.State)
		m.publish(ctx, store.EventAlertResolved, a)
	}
	return a, err
}

// publish sends an alert event to streams and to operators over MQTT.
func (m *Manager) publish(ctx context.Context, event string, a *store.Alert) {
	ev := store.AlertEvent{Event: event, Alert: *a}
	m.hub.Publish(ev)
	if m.bcast == nil {
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return
	}
	topic := "alerts/" + a.Severity + "/" + a.DeviceID
	if err := m.bcast.Broadcast(ctx, OperatorsGroup, topic, payload, false); err != nil {
		m.log.WarnContext(ctx, "alert: cannot publish to operators over MQTT", "alert", a.ID, "err", err)
	}
}

// now is the time for event data.
func now() time.Time { return time.Now().UTC() }
