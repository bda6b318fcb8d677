// Package synth generates a labelled synthetic fleet for evaluating
// behaviour detection: normal devices that follow daily cycles with noise,
// and devices that come under attack (port scanning, exfiltration, C2
// beaconing, credential brute force, firmware downgrade, certificate
// cloning) at a known time. The same behaviours drive `muster sim fleet
// --attacks`, which turns them into real MQTT traffic.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
)

// Scenario is an attack.
type Scenario string

// The attack scenarios.
const (
	Normal       Scenario = ""
	PortScan     Scenario = "portscan"
	Exfiltration Scenario = "exfiltration"
	Beaconing    Scenario = "c2"
	BruteForce   Scenario = "bruteforce"
	Downgrade    Scenario = "downgrade"
	Clone        Scenario = "clone"
)

// Scenarios lists every attack.
var Scenarios = []Scenario{PortScan, Exfiltration, Beaconing, BruteForce, Downgrade, Clone}

// ParseScenarios reads a comma-separated list of scenarios; "all" means
// every one.
func ParseScenarios(s string) ([]Scenario, error) {
	if s == "all" {
		return slices.Clone(Scenarios), nil
	}
	var out []Scenario
	for _, f := range strings.Split(s, ",") {
		sc := Scenario(strings.TrimSpace(f))
		if !slices.Contains(Scenarios, sc) {
			return nil, fmt.Errorf("attack %q: use all, or some of portscan, exfiltration, c2, bruteforce, downgrade, clone", f)
		}
		out = append(out, sc)
	}
	return out, nil
}

// C2Addresses are the command-and-control addresses beaconing devices
// contact, and C2Names the names they look them up by (C2Names[i] resolves
// to C2Addresses[i]), all under C2Domain. C2Feed lists the addresses and
// the parent domain as an intelligence feed.
var (
	C2Addresses = []string{"203.0.113.66", "198.51.100.23"}
	C2Names     = []string{"beacon." + C2Domain, "sync." + C2Domain}
)

// C2Domain is the parent domain of the C2 servers' names (RFC 2606's
// reserved .example).
const C2Domain = "c2-relay.example"

// C2Feed is a list naming C2Addresses and C2Domain, for `muster intel
// import`.
func C2Feed() string {
	return "# synthetic C2 servers (documentation ranges)\n" + strings.Join(C2Addresses, "\n") + "\n" + C2Domain + "\n"
}

// Firmware versions: normal devices run FirmwareCurrent (and may upgrade
// to FirmwareNext); a downgrade attack rolls back to FirmwareOld.
const (
	FirmwareComponent = "main"
	FirmwareOld       = "1.9.0"
	FirmwareCurrent   = "2.3.1"
	FirmwareNext      = "2.4.0"
)

// Device is one simulated device: its own normal behaviour, and an attack
// that starts at AttackAt when Attack is set.
type Device struct {
	ID       string
	Model    string
	Attack   Scenario
	AttackAt time.Time

	rng *rand.Rand
	// Normal behaviour, drawn once per device: what is normal for one
	// device is not for another.
	msgs      float64 // mean messages per window at the daily mean
	msgBytes  float64
	traffic   float64 // mean bytes out per window (device side)
	amplitude float64
	phase     float64
	ip        string
	dests     []string
	listen    []gateway.ListeningPort
	topics    []string
	firmware  string
	upgradeAt time.Time
	// counters are the device's interface totals since boot.
	counters gateway.NetworkCounters
	// exfilFor is how long the exfiltration spike lasts.
	exfilFor time.Duration
}

// NewDevice draws a device's normal behaviour from seed.
func NewDevice(id, model string, seed uint64) *Device {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := &Device{ID: id, Model: model, rng: r,
		msgs:      math.Exp(r.NormFloat64()*0.8 + math.Log(12)),
		msgBytes:  80 + r.Float64()*400,
		traffic:   math.Exp(r.NormFloat64()*1.0 + math.Log(200e3)),
		amplitude: 0.2 + r.Float64()*0.5,
		phase:     r.Float64() * 2 * math.Pi,
		ip:        fmt.Sprintf("10.%d.%d.%d", r.IntN(250), r.IntN(250), 1+r.IntN(250)),
		firmware:  FirmwareCurrent,
		exfilFor:  time.Duration(60+r.IntN(60)) * time.Minute,
	}
	for i := 0; i < 1+r.IntN(3); i++ {
		d.dests = append(d.dests, fmt.Sprintf("192.0.2.%d", 1+r.IntN(250)))
	}
	d.listen = []gateway.ListeningPort{{Protocol: "tcp", Port: 443}}
	if r.IntN(2) == 0 {
		d.listen = append(d.listen, gateway.ListeningPort{Protocol: "udp", Port: 5353})
	}
	for i := 0; i < 2+r.IntN(3); i++ {
		d.topics = append(d.topics, fmt.Sprintf("devices/%s/telemetry/%d", id, i))
	}
	return d
}

// Tick is what a device does in one metering window.
type Tick struct {
	// Window is what the gateway meters for the device.
	Window store.MeterWindow
	// Report is the device's own report at the end of the window.
	Report *gateway.Report
	// FailedLogins is how many refused connection attempts the device
	// (or an attacker holding its identity) makes; CloneFrom, when set,
	// is a second address the device's certificate connects from.
	FailedLogins int
	CloneFrom    string
	// Attacking says whether the attack is under way in this window.
	Attacking bool
}

func (d *Device) poisson(mean float64) int64 {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return int64(math.Max(0, math.Round(mean+math.Sqrt(mean)*d.rng.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), int64(0), 1.0
	for {
		p *= d.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// cycle is the daily activity factor at t.
func (d *Device) cycle(t time.Time) float64 {
	day := float64(t.UnixNano()%int64(24*time.Hour)) / float64(24*time.Hour)
	return 1 + d.amplitude*math.Sin(2*math.Pi*day+d.phase)
}

// noise is multiplicative log-normal noise.
func (d *Device) noise() float64 { return math.Exp(0.25 * d.rng.NormFloat64()) }

// Tick simulates the window [start, start+window).
func (d *Device) Tick(start time.Time, window time.Duration) Tick {
	end := start.Add(window)
	c := d.cycle(start)
	scale := window.Minutes() / 5
	w := store.MeterWindow{DeviceID: d.ID, Start: start.UTC(), Seconds: int64(window / time.Second)}
	w.MsgsIn = d.poisson(d.msgs * c * scale)
	w.BytesIn = int64(float64(w.MsgsIn) * d.msgBytes * d.noise())
	w.MsgsOut = d.poisson(0.3 * scale)
	w.BytesOut = w.MsgsOut*120 + 4*int64(scale)
	w.Topics = d.topics[:min(len(d.topics), int(w.MsgsIn))]
	w.SourceIPs = []string{d.ip}
	// Now and then a device reconnects (a reboot, a lost link), sometimes
	// before the broker noticed the old session was gone.
	if d.rng.Float64() < 0.003 {
		w.Attempts, w.Connects = 1, 1
		w.Disconnects = map[string]int64{"closed": 1}
		if d.rng.IntN(3) == 0 {
			w.Takeovers = 1
		}
		// A reconnect sometimes comes from a new address (DHCP, NAT).
		if d.rng.IntN(4) == 0 {
			d.ip = fmt.Sprintf("10.%d.%d.%d", d.rng.IntN(250), d.rng.IntN(250), 1+d.rng.IntN(250))
			w.SourceIPs = append(w.SourceIPs, d.ip)
		}
	}
	// A flaky link makes a device reconnect several times in a window.
	if d.rng.Float64() < 0.0005 {
		n := int64(2 + d.rng.IntN(6))
		w.Attempts, w.Connects = w.Attempts+n, w.Connects+n
		w.Disconnects = map[string]int64{"keepalive": n}
	}
	w.AuthFailures = d.poisson(0.001 * scale)
	// A device with a stale clock or certificate fails a few times.
	if d.rng.Float64() < 0.0005 {
		w.AuthFailures += int64(1 + d.rng.IntN(5))
	}
	// Some devices are upgraded during the simulation: a version going
	// forwards is normal.
	if d.upgradeAt.IsZero() {
		d.upgradeAt = start.Add(time.Duration(d.rng.Int64N(int64(30 * 24 * time.Hour))))
	}
	if !start.Before(d.upgradeAt) {
		d.firmware = FirmwareNext
	}

	out := gateway.NetworkCounters{
		BytesOut: uint64(d.traffic * c * d.noise() * scale),
		BytesIn:  uint64(d.traffic * 0.4 * c * d.noise() * scale),
	}
	// Now and then a device uploads a log or a core dump: a burst of a few
	// times its usual traffic for one window.
	if d.rng.Float64() < 0.002 {
		out.BytesOut += uint64((2 + 4*d.rng.Float64()) * d.traffic * scale)
	}
	out.PacketsOut, out.PacketsIn = out.BytesOut/900+1, out.BytesIn/900+1
	rep := &gateway.Report{Version: 1, Timestamp: &end, ListeningPorts: d.listen}
	dests := d.dests[:1+d.rng.IntN(len(d.dests))]
	for i, ip := range dests {
		rep.Connections = append(rep.Connections, gateway.Connection{Protocol: "tcp", LocalPort: 40000 + i, RemoteAddress: ip, RemotePort: 443})
	}
	rep.DestinationIPs = slices.Clone(dests)
	// An occasional lookup of a time or update server.
	if d.rng.Float64() < 0.02 {
		rep.DestinationIPs = append(rep.DestinationIPs, fmt.Sprintf("198.18.0.%d", 1+d.rng.IntN(250)))
	}
	fw := d.firmware

	t := Tick{}
	if d.Attack != Normal && !start.Before(d.AttackAt) {
		t.Attacking = true
		switch d.Attack {
		case PortScan:
			// Mirai: scans random addresses on telnet ports, and opens a
			// listener of its own.
			n := 150 + d.rng.IntN(600)
			for i := 0; i < n; i++ {
				ip := netip.AddrFrom4([4]byte{byte(1 + d.rng.IntN(223)), byte(d.rng.IntN(256)), byte(d.rng.IntN(256)), byte(1 + d.rng.IntN(254))}).String()
				rep.DestinationIPs = append(rep.DestinationIPs, ip)
				if i < 200 {
					rep.Connections = append(rep.Connections, gateway.Connection{Protocol: "tcp", LocalPort: 30000 + i, RemoteAddress: ip, RemotePort: []int{23, 2323}[i%2]})
				}
			}
			rep.ListeningPorts = append(slices.Clone(d.listen), gateway.ListeningPort{Protocol: "tcp", Port: 48101})
			out.BytesOut += uint64(n) * 60
		case Exfiltration:
			if start.Before(d.AttackAt.Add(d.exfilFor)) {
				out.BytesOut += uint64((30 + d.rng.Float64()*70) * d.traffic * scale)
				t.Attacking = true
			} else {
				t.Attacking = false
			}
		case Beaconing:
			// One draw picks the address and its name, so the fleet's
			// random sequence, and the evaluation's numbers, stay as
			// they were before reports carried names.
			k := d.rng.IntN(len(C2Addresses))
			c2 := C2Addresses[k]
			rep.Domains = append(rep.Domains, C2Names[k])
			rep.DestinationIPs = append(rep.DestinationIPs, c2)
			rep.Connections = append(rep.Connections, gateway.Connection{Protocol: "tcp", LocalPort: 41999, RemoteAddress: c2, RemotePort: 8443})
			out.BytesOut += 2048
		case BruteForce:
			t.FailedLogins = 25 + d.rng.IntN(200)
			w.Attempts += int64(t.FailedLogins)
			w.AuthFailures += int64(t.FailedLogins)
		case Downgrade:
			fw = FirmwareOld
		case Clone:
			// Two holders of one certificate keep taking each other's
			// session over, from two addresses.
			t.CloneFrom = "100.64.7.9"
			n := int64(3 + d.rng.IntN(10))
			w.Attempts += 2 * n
			w.Connects += 2 * n
			w.Takeovers += 2*n - 1
			w.Disconnects = map[string]int64{"takeover": 2*n - 1}
			w.SourceIPs = []string{d.ip, t.CloneFrom}
		}
	}
	d.counters.BytesIn += out.BytesIn
	d.counters.BytesOut += out.BytesOut
	d.counters.PacketsIn += out.PacketsIn
	d.counters.PacketsOut += out.PacketsOut
	counters := d.counters
	rep.Network = &counters
	rep.Firmware = []gateway.FirmwareVersion{{Component: FirmwareComponent, Version: fw}}
	if len(rep.DestinationIPs) > 1024 {
		rep.DestinationIPs = rep.DestinationIPs[:1024]
	}
	t.Window, t.Report = w, rep
	return t
}
