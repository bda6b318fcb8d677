package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
)

// fleetFlags configure muster sim fleet.
type fleetFlags struct {
	devices, start, concurrency, qos int
	factory, model, serialFormat     string
	template, ca                     string
	servers, mqtt, localAddrs        []string
	rate                             float64
	duration, reportEvery            time.Duration
	attacks                          []string
}

// fleetReport is what muster sim fleet prints.
type fleetReport struct {
	Devices      int `json:"devices"`
	Manufactured int `json:"manufactured"`
	Provisioned  int `json:"provisioned"`
	Connected    int `json:"connected"`
	// Dropped counts sessions the gateway or the network ended during the
	// run.
	Dropped            int      `json:"dropped"`
	Published          int64    `json:"published"`
	Refused            int64    `json:"refused"`
	PublishErrors      int64    `json:"publishErrors"`
	ManufactureSeconds float64  `json:"manufactureSeconds"`
	ProvisionSeconds   float64  `json:"provisionSeconds"`
	ProvisionPerSecond float64  `json:"provisionPerSecond"`
	ConnectSeconds     float64  `json:"connectSeconds"`
	ConnectPerSecond   float64  `json:"connectPerSecond"`
	RunSeconds         float64  `json:"runSeconds"`
	MessagesPerSecond  float64  `json:"messagesPerSecond"`
	PublishLatencyMs   latency  `json:"publishLatencyMs"`
	Attacks            []string `json:"attacks,omitempty"`
	FirstFailures      []string `json:"firstFailures,omitempty"`
}

// simDevice is one simulated device of the fleet.
type simDevice struct {
	index   int
	serial  string
	birth   tls.Certificate
	agent   *agent.Agent
	session *agent.Session
	mqtt    string
	// behaviour is what the device sends each tick: normal telemetry
	// unless an attack scenario replaced it.
	behaviour simBehaviour
	qos       int
}

// publish sends telemetry at the fleet's QoS.
func (d *simDevice) publish(ctx context.Context, topic string, payload []byte) error {
	if d.qos == 0 {
		return d.session.PublishAtMostOnce(ctx, topic, payload)
	}
	return d.session.Publish(ctx, topic, payload)
}

// simBehaviour is what a simulated device does on each tick of the run.
// Publishing errors are counted by the caller; ErrNotAuthorized counts as
// refused.
type simBehaviour interface {
	Tick(ctx context.Context, d *simDevice, tick int, now time.Time) error
}

func newSimFleetCmd(g *globals) *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "fleet --devices N --factory NAME --model MODEL",
		Short: "Run a whole simulated fleet: manufacture, provision, connect to MQTT, publish telemetry",
		Long: `Run a simulated fleet end to end against a Muster server, as real devices would:

  1. manufacture N devices through the admin API (a key-mode mint batch of the
     factory; serials from --serial-format and --start),
  2. provision each over its own mTLS connection with its birth certificate,
  3. connect each to the MQTT gateway with its operational certificate (client id =
     device id) and subscribe to its commands (rotate is acted on),
  4. publish telemetry on devices/{id}/telemetry at --rate messages/s per device and a
     device report on devices/{id}/metrics every --report-every, for --duration,
  5. print a summary: counts, rates and publish latencies.

With several --server and --mqtt addresses the devices are spread over them in
turn (several nodes). Credentials are kept in memory only.`,
		Example: `  muster sim fleet --devices 100 --factory acme --model sensor-y --serial-format 'SN-%06d' --start 5001 --duration 10s`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := runFleet(cmd, g, f)
			if rep == nil {
				return err
			}
			perr := g.printer(cmd).print(rep, func(t *table) {
				t.row("Devices", fmt.Sprint(rep.Devices))
				t.row("Manufactured", fmt.Sprintf("%d in %.2f s", rep.Manufactured, rep.ManufactureSeconds))
				t.row("Provisioned", fmt.Sprintf("%d in %.2f s (%.0f/s)", rep.Provisioned, rep.ProvisionSeconds, rep.ProvisionPerSecond))
				t.row("Connected", fmt.Sprintf("%d in %.2f s (%.0f/s)", rep.Connected, rep.ConnectSeconds, rep.ConnectPerSecond))
				t.row("Dropped", fmt.Sprint(rep.Dropped))
				t.row("Published", fmt.Sprintf("%d in %.2f s (%.0f msgs/s), %d refused, %d failed", rep.Published, rep.RunSeconds, rep.MessagesPerSecond, rep.Refused, rep.PublishErrors))
				t.row("Publish latency", fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", rep.PublishLatencyMs.P50, rep.PublishLatencyMs.P90, rep.PublishLatencyMs.P99, rep.PublishLatencyMs.Max))
				if len(rep.Attacks) > 0 {
					t.row("Attacks", strings.Join(rep.Attacks, ", "))
				}
				for _, e := range rep.FirstFailures {
					t.row("Failure", e)
				}
			})
			return errors.Join(err, perr)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.devices, "devices", 10, "devices in the fleet")
	fl.StringVar(&f.factory, "factory", "", "factory that manufactures them (must exist; required)")
	fl.StringVar(&f.model, "model", "", "device model (one of the factory's; required)")
	fl.StringVar(&f.serialFormat, "serial-format", "SIM-%06d", "serial numbers, a printf format of the device's number; must match the factory's serial pattern")
	fl.IntVar(&f.start, "start", 1, "number of the first device")
	fl.StringVar(&f.template, "template", "", "provisioning template (default: the device's own, else \"default\")")
	fl.StringArrayVar(&f.servers, "server", nil, "device listener URL, repeatable for several nodes (default https://<data-dir>/device.addr)")
	fl.StringArrayVar(&f.mqtt, "mqtt", nil, "MQTT gateway host:port, repeatable for several nodes (default <data-dir>/mqtt.addr)")
	fl.StringVar(&f.ca, "ca", "", "Muster's root CA certificate (default <data-dir>/ca.pem)")
	fl.StringSliceVar(&f.localAddrs, "local-addrs", nil, "source IP addresses for the MQTT connections, used in turn (e.g. 127.0.0.2,127.0.0.3: more connections than one address has ports)")
	fl.IntVar(&f.concurrency, "concurrency", 32, "devices provisioning and connecting at once")
	fl.Float64Var(&f.rate, "rate", 1, "telemetry messages per second per device")
	fl.IntVar(&f.qos, "qos", 1, "QoS of telemetry: 1 (each publish acknowledged and timed) or 0 (fire and forget; the summary counts what was sent)")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long the fleet stays connected and publishes")
	fl.DurationVar(&f.reportEvery, "report-every", time.Minute, "interval of device reports on devices/{id}/metrics (one is sent at connect); 0 sends none")
	fl.StringSliceVar(&f.attacks, "attacks", nil, "attack scenarios, played by the first devices one each after eight normal reports: portscan, exfiltration, c2, bruteforce, downgrade, clone, or all (docs/detection.md)")
	markRequired(cmd, "factory")
	markRequired(cmd, "model")
	return cmd
}

// runFleet runs the fleet and reports on it; the report is nil only when
// nothing ran.
func runFleet(cmd *cobra.Command, g *globals, f fleetFlags) (*fleetReport, error) {
	ctx := cmd.Context()
	if f.devices < 1 {
		return nil, fmt.Errorf("--devices %d: want at least 1", f.devices)
	}
	if f.rate < 0 || math.IsInf(f.rate, 0) || math.IsNaN(f.rate) {
		return nil, fmt.Errorf("--rate %v: want a non-negative number of messages per second", f.rate)
	}
	if f.qos != 0 && f.qos != 1 {
		return nil, fmt.Errorf("--qos %d: want 0 or 1", f.qos)
	}
	if !strings.Contains(f.serialFormat, "%") {
		return nil, fmt.Errorf("--serial-format %q has no %%d for the device number", f.serialFormat)
	}
	for _, a := range f.localAddrs {
		if net.ParseIP(a) == nil {
			return nil, fmt.Errorf("--local-addrs: %q is not an IP address", a)
		}
	}
	behaviours, err := simBehaviours(f)
	if err != nil {
		return nil, err
	}
	if err := f.defaults(g.setting("data-dir", "MUSTER_DATA_DIR")); err != nil {
		return nil, err
	}
	pemData, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("read --ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("--ca %s holds no PEM certificate", f.ca)
	}
	c, err := g.newClient(cmd)
	if err != nil {
		return nil, err
	}
	rep := &fleetReport{Devices: f.devices, Attacks: f.attacks}
	var failures failureLog

	// 1. Manufacture.
	t0 := time.Now()
	devices, err := manufactureFleet(ctx, c, f, &failures)
	rep.ManufactureSeconds = time.Since(t0).Seconds()
	rep.Manufactured = len(devices)
	if err != nil {
		return rep, err
	}
	for _, d := range devices {
		d.mqtt = f.mqtt[d.index%len(f.mqtt)]
		d.behaviour = behaviours(d.index)
		d.qos = f.qos
	}

	// 2. Provision, each device over its own mTLS connection.
	t0 = time.Now()
	devices = forEachDevice(ctx, devices, f.concurrency, &failures, func(d *simDevice) error {
		a, err := agent.New(agent.Config{Server: f.servers[d.index%len(f.servers)], Roots: roots, Birth: d.birth, Template: f.template})
		if err != nil {
			return err
		}
		if _, err := a.Provision(ctx); err != nil {
			if errors.Is(err, agent.ErrRefused) {
				return errors.New("provisioning refused (see the device history)")
			}
			return err
		}
		d.agent = a
		return nil
	})
	rep.ProvisionSeconds = time.Since(t0).Seconds()
	rep.Provisioned = len(devices)
	rep.ProvisionPerSecond = perSecond(len(devices), rep.ProvisionSeconds)

	// 3. Connect.
	t0 = time.Now()
	devices = forEachDevice(ctx, devices, f.concurrency, &failures, func(d *simDevice) error {
		cfg := agent.MQTTConfig{Addr: d.mqtt, Commands: true}
		if len(f.localAddrs) > 0 {
			ip := net.ParseIP(f.localAddrs[d.index%len(f.localAddrs)])
			cfg.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		}
		s, err := d.agent.ConnectMQTT(ctx, cfg)
		if err != nil {
			return err
		}
		d.session = s
		return nil
	})
	rep.ConnectSeconds = time.Since(t0).Seconds()
	rep.Connected = len(devices)
	rep.ConnectPerSecond = perSecond(len(devices), rep.ConnectSeconds)
	defer func() {
		for _, d := range devices {
			_ = d.session.Close()
		}
	}()

	// 4. Publish for the duration.
	t0 = time.Now()
	stats := publishFleet(ctx, devices, f)
	rep.RunSeconds = time.Since(t0).Seconds()
	rep.Published, rep.Refused, rep.PublishErrors = stats.published.Load(), stats.refused.Load(), stats.failed.Load()
	rep.MessagesPerSecond = perSecond(int(rep.Published), rep.RunSeconds)
	rep.PublishLatencyMs = percentiles(stats.latencies)
	for _, d := range devices {
		select {
		case <-d.session.Done():
			rep.Dropped++
			failures.add(d.serial, d.session.Err())
		default:
		}
	}
	rep.FirstFailures = failures.first(5)
	if failures.n > 0 {
		return rep, fmt.Errorf("%d devices failed (first failures in the summary)", failures.n)
	}
	return rep, nil
}

// defaults fills in the server, MQTT and CA settings from the data
// directory of a server on this host.
func (f *fleetFlags) defaults(dataDir string) error {
	if len(f.servers) == 0 {
		addr, err := readDataFile(dataDir, "device.addr")
		if err != nil {
			return fmt.Errorf("no --server, and no device.addr in %s: %w", dataDir, err)
		}
		f.servers = []string{"https://" + strings.TrimSpace(string(addr))}
	}
	if len(f.mqtt) == 0 {
		addr, err := readDataFile(dataDir, "mqtt.addr")
		if err != nil {
			return fmt.Errorf("no --mqtt, and no mqtt.addr in %s: %w", dataDir, err)
		}
		f.mqtt = []string{strings.TrimSpace(string(addr))}
	}
	if f.ca == "" {
		f.ca = filepath.Join(dataDir, "ca.pem")
	}
	return nil
}

// manufactureFleet registers the fleet as one minted batch and keeps each
// device's birth credentials in memory.
func manufactureFleet(ctx context.Context, c *client.Client, f fleetFlags, failures *failureLog) ([]*simDevice, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := fmt.Fprintln(pw, "serial,model")
		for i := range f.devices {
			if err != nil {
				break
			}
			_, err = fmt.Fprintf(pw, "%s,%s\n", fmt.Sprintf(f.serialFormat, f.start+i), f.model)
		}
		pw.CloseWithError(err)
	}()
	var devices []*simDevice
	_, err := c.SubmitBatch(ctx, f.factory, pr, client.BatchOptions{Format: client.FormatCSV, KeyMode: client.KeyModeMint}, func(r client.BatchResult) error {
		if r.KeyPEM == "" {
			msg := r.Message
			if r.Status == "exists" {
				msg = "already manufactured, so its key is gone: use another --start"
			}
			failures.add(r.Serial, fmt.Errorf("manufacture: %s %s", r.Status, msg))
			return nil
		}
		birth, err := tls.X509KeyPair([]byte(r.CertificatePEM), []byte(r.KeyPEM))
		if err != nil {
			return fmt.Errorf("birth credentials of %s: %w", r.Serial, err)
		}
		devices = append(devices, &simDevice{index: len(devices), serial: r.Serial, birth: birth})
		return nil
	})
	if err != nil {
		return devices, fmt.Errorf("manufacture the fleet: %w", err)
	}
	return devices, nil
}

// forEachDevice runs step on every device with concurrency workers and
// returns those it succeeded on, in their order.
func forEachDevice(ctx context.Context, devices []*simDevice, concurrency int, failures *failureLog, step func(*simDevice) error) []*simDevice {
	ok := make([]bool, len(devices))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devices) || ctx.Err() != nil {
					return
				}
				if err := step(devices[i]); err != nil {
					failures.add(devices[i].serial, err)
					continue
				}
				ok[i] = true
			}
		})
	}
	wg.Wait()
	var out []*simDevice
	for i, d := range devices {
		if ok[i] {
			out = append(out, d)
		}
	}
	return out
}

// publishStats count what the fleet published.
type publishStats struct {
	published, refused, failed atomic.Int64
	mu                         sync.Mutex
	latencies                  []time.Duration
}

// publishFleet runs every device's behaviour once per tick (1/rate) for
// the duration, each device starting at a random offset so the fleet does
// not publish in lockstep.
func publishFleet(ctx context.Context, devices []*simDevice, f fleetFlags) *publishStats {
	stats := &publishStats{}
	ctx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	period := time.Duration(0)
	if f.rate > 0 {
		period = time.Duration(float64(time.Second) / f.rate)
	}
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Go(func() {
			var lat []time.Duration
			defer func() {
				stats.mu.Lock()
				stats.latencies = append(stats.latencies, lat...)
				stats.mu.Unlock()
			}()
			record := func(t0 time.Time, err error) {
				switch {
				case err == nil:
					stats.published.Add(1)
					lat = append(lat, time.Since(t0))
				case errors.Is(err, agent.ErrNotAuthorized):
					stats.refused.Add(1)
				case ctx.Err() == nil:
					stats.failed.Add(1)
				}
			}
			lastReport := time.Time{}
			if period > 0 {
				if !sleepCtx(ctx, time.Duration(rand.Int64N(int64(period)))) {
					return
				}
			}
			for tick := 0; ; tick++ {
				now := time.Now()
				if f.reportEvery > 0 && now.Sub(lastReport) >= f.reportEvery {
					lastReport = now
					t0 := time.Now()
					record(t0, d.session.Publish(ctx, "devices/"+d.session.DeviceID()+"/metrics", reportOf(d, now)))
				}
				if period > 0 {
					t0 := time.Now()
					record(t0, d.behaviour.Tick(ctx, d, tick, now))
				}
				wait := period
				if wait == 0 {
					wait = f.reportEvery
				}
				if wait == 0 || !sleepCtx(ctx, time.Until(now.Add(wait))) {
					<-ctx.Done()
					return
				}
				select {
				case <-d.session.Done():
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	return stats
}

// telemetry is the normal behaviour: one reading on devices/{id}/telemetry.
type telemetry struct{}

func (telemetry) Tick(ctx context.Context, d *simDevice, tick int, now time.Time) error {
	// A slow daily cycle with noise, so the numbers look like a sensor's.
	hour := float64(now.Hour()) + float64(now.Minute())/60
	temp := 20 + 5*math.Sin(2*math.Pi*hour/24) + rand.NormFloat64()*0.3
	payload, _ := json.Marshal(map[string]any{"seq": tick, "time": now.UTC().Format(time.RFC3339Nano), "temperature": math.Round(temp*100) / 100})
	return d.publish(ctx, "devices/"+d.session.DeviceID()+"/telemetry", payload)
}

// normalReport is a device report (docs/gateway.md) of a device that
// talks only to its broker.
func normalReport(d *simDevice, now time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"version":   1,
		"timestamp": now.UTC().Format(time.RFC3339),
		"listeningPorts": []map[string]any{
			{"protocol": "tcp", "port": 8080},
		},
		"network": map[string]any{"bytesIn": 2000 + rand.IntN(500), "bytesOut": 3000 + rand.IntN(500), "packetsIn": 20 + rand.IntN(5), "packetsOut": 25 + rand.IntN(5)},
		"custom":  map[string]any{"cpu.load": math.Round(rand.Float64()*30) / 100},
	})
	return b
}

// simBehaviours picks each device's behaviour: normal telemetry, unless
// an attack scenario claims it.
func simBehaviours(f fleetFlags) (func(index int) simBehaviour, error) {
	if len(f.attacks) > 0 {
		return attackBehaviours(f)
	}
	return func(int) simBehaviour { return telemetry{} }, nil
}

// failureLog counts failures and keeps the first few.
type failureLog struct {
	mu    sync.Mutex
	n     int
	items []string
}

func (l *failureLog) add(serial string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.items) < 20 {
		l.items = append(l.items, serial+": "+err.Error())
	}
}

func (l *failureLog) first(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.items[:min(n, len(l.items))])
}

func perSecond(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// percentiles summarises durations in milliseconds.
func percentiles(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	return latency{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: pct(1)}
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether the
// whole sleep happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
