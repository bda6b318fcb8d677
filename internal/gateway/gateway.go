// Package gateway is Muster's device gateway: an embedded MQTT broker
// (MQTT 3.1.1 and 5 over TLS) that admits only devices whose client
// certificates verify at the handshake, scopes every publish, subscription
// and delivery by a per-identity topic policy, and applies revocation,
// suspension and quarantine to live sessions. See docs/gateway.md.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// DefaultAddr is where the gateway listens unless told.
const DefaultAddr = ":8883"

// Config configures New.
type Config struct {
	// Addr defaults to DefaultAddr.
	Addr string
	// WSAddr, when set, also serves MQTT over WebSocket (path /mqtt) over
	// TLS with the same client certificate rules.
	WSAddr string
	// Trust (the CA registry) and Revocation (the revocation service) are
	// required: every handshake checks the client's chain against them,
	// and live sessions are rechecked against Revocation.
	Trust      pki.TrustSource
	Revocation pki.RevocationChecker
	// Devices is required: sessions are admitted by device state.
	Devices DeviceSource
	// ServerCertificate returns the listener's TLS certificate. It is
	// called once, by New.
	ServerCertificate func(ctx context.Context) (tls.Certificate, error)
	// Presence, when set, receives device presence. Updater, when set,
	// moves a provisioned device to active on its first operational
	// connection. Node names this node in presence records; it defaults
	// to the host name.
	Presence PresenceSink
	Updater  DeviceUpdater
	Node     string
	// Provisioner, when set, answers provisioning requests of birth
	// identities; without it they are rejected with a pointer to EST.
	Provisioner Provisioner
	// Meters, when set, receives the per-device metering windows, each
	// MeterWindow long (default DefaultMeterWindow).
	Meters      MeterSink
	MeterWindow time.Duration
	// Observer, when set, receives every device's metering windows as
	// they close and every valid device report as it arrives (the
	// behaviour detector).
	Observer Observer
	// Redirect, when set, sends devices whose home is another region
	// there (redirect.go).
	Redirect Redirector
	// DisablePacketMetering stops metering every packet (bytes, messages,
	// topics). It exists to measure the bare broker in benchmarks.
	DisablePacketMetering bool
	// EnforceInterval defaults to DefaultEnforceInterval.
	EnforceInterval time.Duration
	Logger          *slog.Logger
}

// Gateway is the embedded broker with its device policy.
type Gateway struct {
	broker      *mqtt.Server
	listener    *tlsListener
	ws          *wsListener // nil without Config.WSAddr
	states      *stateCache
	sessions    *sessions
	revocation  pki.RevocationChecker
	presence    *presence
	updater     DeviceUpdater
	provisioner Provisioner
	meter       *meter
	meterSink   MeterSink
	// meterKick asks the meter loop to save soon: a session ended, and
	// its counts should not wait for the next flush.
	meterKick chan struct{}
	observer  Observer
	node      string
	// background holds work the hooks start, such as activations, so
	// Serve can wait for it.
	background   sync.WaitGroup
	enforceEvery time.Duration
	log          *slog.Logger
	closeOnce    sync.Once
	closeErr     error
}

// New binds the gateway's listener; Serve serves it. Binding first lets the
// caller learn about a taken port before anything runs.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	verifier, err := pki.NewVerifier(cfg.Trust, cfg.Revocation)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.Devices == nil {
		return nil, errors.New("gateway: a device source is required")
	}
	if cfg.ServerCertificate == nil {
		return nil, errors.New("gateway: a server certificate is required")
	}
	cert, err := cfg.ServerCertificate(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: server certificate: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		states:       newStateCache(cfg.Devices, time.Now()),
		sessions:     newSessions(),
		revocation:   cfg.Revocation,
		updater:      cfg.Updater,
		provisioner:  cfg.Provisioner,
		enforceEvery: cfg.EnforceInterval,
		log:          log,
	}
	g.node = cfg.Node
	if g.node == "" {
		g.node, _ = os.Hostname()
	}
	if cfg.Presence != nil {
		g.presence = &presence{sink: cfg.Presence, node: g.node, pending: map[string]store.Presence{}}
	}
	window := cfg.MeterWindow
	if window <= 0 {
		window = DefaultMeterWindow
	}
	g.meter = newMeter(window, newFleetMetrics(func() float64 { return float64(g.sessions.count()) }))
	g.meterKick = make(chan struct{}, 1)
	g.meterSink = cfg.Meters
	g.observer = cfg.Observer
	if cfg.Observer != nil {
		g.meter.observe = cfg.Observer.ObserveWindow
	}
	if g.enforceEvery <= 0 {
		g.enforceEvery = DefaultEnforceInterval
	}
	g.broker = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: brokerCapabilities(),
		// Broker internals log at debug: per-packet warnings from
		// misbehaving devices must not flood the node's log.
		Logger: slog.New(quietHandler{log.Handler()}),
	})
	if err := g.broker.AddHook(&authHook{g: g, packets: !cfg.DisablePacketMetering}, nil); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.Redirect != nil {
		if err := g.broker.AddHook(&redirectHook{g: g, to: cfg.Redirect}, nil); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen on %s: %w (use --mqtt-addr)", addr, err)
	}
	adm := &admission{verifier: verifier, log: log, meter: g.meter, meterBytes: !cfg.DisablePacketMetering}
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// RequireAnyClientCert leaves chain verification to the
		// admission's VerifyConnection, which knows Muster's per-kind
		// anchors and checks revocation; crypto/tls alone knows neither.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	g.listener = &tlsListener{id: "mqtts", ln: ln, tls: tlsCfg, adm: adm}
	if err := g.broker.AddListener(g.listener); err != nil {
		ln.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.WSAddr != "" {
		wsln, err := net.Listen("tcp", cfg.WSAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("gateway: listen on %s: %w (use --mqtt-ws-addr)", cfg.WSAddr, err)
		}
		g.ws = newWSListener("mqtt-wss", wsln, tlsCfg, adm)
		if err := g.broker.AddListener(g.ws); err != nil {
			ln.Close()
			wsln.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return g, nil
}

// Addr is the address the gateway listens on (useful with port 0).
func (g *Gateway) Addr() string { return g.listener.Address() }

// WSAddr is the address of the WebSocket listener, empty without one.
func (g *Gateway) WSAddr() string {
	if g.ws == nil {
		return ""
	}
	return g.ws.Address()
}

// Serve runs the broker and live enforcement until ctx ends, then closes
// every session and the listener.
func (g *Gateway) Serve(ctx context.Context) error {
	if err := g.broker.Serve(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	// The presence and metering loops outlive ctx until the broker is
	// closed, so their last flush records every session's end.
	presenceCtx, stopPresence := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPresence()
	var loops sync.WaitGroup
	if g.presence != nil {
		loops.Go(func() { g.presenceLoop(presenceCtx) })
	}
	if g.meterSink != nil || g.observer != nil {
		loops.Go(func() { g.meterLoop(presenceCtx) })
	}
	g.enforceLoop(ctx)
	err := g.Close()
	g.background.Wait()
	stopPresence()
	loops.Wait()
	return err
}

// Close stops the broker: it disconnects every session and releases the
// listener. It is safe to call without Serve.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		if err := g.broker.Close(); err != nil {
			g.closeErr = fmt.Errorf("gateway: close: %w", err)
		}
	})
	return g.closeErr
}

// Takeovers is how many sessions have replaced a live session of the same
// client id since the gateway started.
func (g *Gateway) Takeovers() int64 { return g.sessions.takeovers.Load() }

// quietHandler lowers the broker's own records to debug: the gateway logs
// what matters about sessions itself.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
