package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/internal/detect/synth"
)

// The attack scenarios of muster sim fleet --attacks are the labelled
// synthetic fleet's (internal/detect/synth): the first devices of the
// fleet each play one scenario, in the order given; the others stay normal.
// An attacked device reports like a normal one for attackAfterReports
// reports (so the detector learns its baseline) and then attacks.
const attackAfterReports = 8

// simulatedWindow is the span each device report stands for: the synthetic
// devices produce a five-minute window's traffic per report, whatever the
// real interval, so volumes look like the real thing.
const simulatedWindow = 5 * time.Minute

// simReporter is a behaviour that writes its own device reports.
type simReporter interface {
	Report(d *simDevice, now time.Time) []byte
}

// reportOf is the device report a simulated device publishes now.
func reportOf(d *simDevice, now time.Time) []byte {
	if r, ok := d.behaviour.(simReporter); ok {
		return r.Report(d, now)
	}
	return normalReport(d, now)
}

// attackBehaviours gives the first devices one attack scenario each.
func attackBehaviours(f fleetFlags) (func(index int) simBehaviour, error) {
	scenarios, err := synth.ParseScenarios(strings.Join(f.attacks, ","))
	if err != nil {
		return nil, fmt.Errorf("--attacks: %w", err)
	}
	if len(scenarios) > f.devices {
		return nil, fmt.Errorf("--attacks names %d scenarios but the fleet has %d devices: add devices", len(scenarios), f.devices)
	}
	if f.reportEvery <= 0 {
		return nil, errors.New("--attacks needs device reports: set --report-every")
	}
	return func(index int) simBehaviour {
		if index >= len(scenarios) {
			return telemetry{}
		}
		dev := synth.NewDevice(fmt.Sprintf("sim-%d", index), f.model, uint64(index)+1)
		dev.Attack = scenarios[index]
		return &attacker{dev: dev, reportEvery: f.reportEvery}
	}, nil
}

// attacker plays one scenario on a simulated device.
type attacker struct {
	dev         *synth.Device
	reportEvery time.Duration

	mu      sync.Mutex
	started bool
	last    synth.Tick
}

// Report is the device's report of its last simulated window: normal at
// first, the attack's once it started.
func (a *attacker) Report(d *simDevice, now time.Time) []byte {
	a.mu.Lock()
	if !a.started {
		a.started = true
		a.dev.AttackAt = now.Add(attackAfterReports * a.reportEvery)
	}
	// Each report stands for a five-minute window; attack time runs on
	// the real clock.
	t := a.dev.Tick(now, simulatedWindow)
	a.last = t
	a.mu.Unlock()
	t.Report.Timestamp = &now
	b, _ := json.Marshal(t.Report)
	return b
}

// Tick publishes telemetry like a normal device, and plays the parts of
// the attack that happen on the connection itself: authorization failures
// for brute force, a second connection with the same certificate for
// cloning.
func (a *attacker) Tick(ctx context.Context, d *simDevice, tick int, now time.Time) error {
	if err := (telemetry{}).Tick(ctx, d, tick, now); err != nil && !errors.Is(err, agent.ErrNotAuthorized) {
		return err
	}
	a.mu.Lock()
	last := a.last
	a.mu.Unlock()
	switch {
	case !last.Attacking:
	case last.FailedLogins > 0:
		// What a compromised device probing for access looks like to the
		// gateway: publishes it is not allowed, each an authorization
		// failure.
		for i := 0; i < min(last.FailedLogins, 50); i++ {
			_ = d.session.Publish(ctx, "devices/"+d.session.DeviceID()+"-neighbour/config", []byte("{}"))
		}
	case last.CloneFrom != "":
		return a.clone(ctx, d)
	}
	return nil
}

// clone connects a second holder of the device's certificate from another
// loopback address, which takes the session over, and then takes it back.
func (a *attacker) clone(ctx context.Context, d *simDevice) error {
	cfg := agent.MQTTConfig{Addr: d.mqtt}
	if host, _, err := net.SplitHostPort(d.mqtt); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			cfg.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		}
	}
	twin, err := d.agent.ConnectMQTT(ctx, cfg)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	_ = twin.Close()
	s, err := d.agent.ConnectMQTT(ctx, agent.MQTTConfig{Addr: d.mqtt, Commands: true})
	if err != nil {
		return fmt.Errorf("clone: reconnect: %w", err)
	}
	// The session the publishing loop watches is this goroutine's own.
	d.session = s
	return nil
}
