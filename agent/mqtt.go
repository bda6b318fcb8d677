package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// ErrNotAuthorized means the gateway refused a publish or subscription
// (MQTT 5 reason code 0x87): the topic is outside what the device may use
// now, for example another device's topic, or anything but its quarantine
// topics while it is quarantined.
var ErrNotAuthorized = errors.New("agent: not authorized by the gateway")

// MQTTConfig says how a device's session with Muster's gateway behaves.
type MQTTConfig struct {
	// Addr is the gateway's host:port (muster serve writes it to
	// <data-dir>/mqtt.addr).
	Addr string
	// ServerName checks the gateway's certificate; default the host of
	// Addr.
	ServerName string
	// KeepAlive is the MQTT keep-alive; default 30 s.
	KeepAlive time.Duration
	// Dialer sets connection options such as a timeout or the local
	// address; nil uses the defaults.
	Dialer *net.Dialer
	// OnMessage receives every message the session's subscriptions
	// deliver, commands included. It runs on the session's reading
	// goroutine: return quickly.
	OnMessage func(topic string, payload []byte)
	// Commands subscribes to the device's command topics at connect. The
	// agent acts on the commands it knows itself (rotate: renew the
	// certificate, used from the next connection on); OnMessage still sees
	// them.
	Commands bool
}

// Session is a device's live MQTT 5 session with the gateway, as its
// operational identity. The agent library does not require it: firmware
// with its own MQTT client connects with Credentials.TLSCertificate and
// the device id as client id, and hands commands to HandleCommand.
type Session struct {
	c        *paho.Client
	deviceID string
	done     chan struct{}

	mu     sync.Mutex
	reason string // why the session ended, once it has
}

// ConnectMQTT opens an MQTT 5 session with the gateway using the agent's
// operational credentials; it fails before provisioning.
func (a *Agent) ConnectMQTT(ctx context.Context, cfg MQTTConfig) (*Session, error) {
	c := a.Credentials()
	if c == nil {
		return nil, errNotProvisioned
	}
	d, err := a.gatewayDialer(cfg, c, cfg.Addr)
	if err != nil {
		return nil, err
	}
	keepAlive := cfg.keepAlive()
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("agent: connect to the gateway %s: %w", cfg.Addr, err)
	}
	s := &Session{deviceID: c.DeviceID, done: make(chan struct{})}
	s.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			a.onMessage(ctx, cfg, pr.Packet.Topic, pr.Packet.Payload)
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			reason := fmt.Sprintf("disconnected by the gateway: reason 0x%02x", d.ReasonCode)
			if d.Properties != nil && d.Properties.ReasonString != "" {
				reason += " (" + d.Properties.ReasonString + ")"
			}
			s.end(reason)
		},
		OnClientError: func(err error) { s.end("connection lost: " + err.Error()) },
	})
	ack, err := s.c.Connect(ctx, &paho.Connect{ClientID: c.DeviceID, KeepAlive: uint16(keepAlive / time.Second), CleanStart: true})
	if err != nil {
		conn.Close()
		if ack != nil {
			return nil, fmt.Errorf("agent: the gateway refused the session: reason 0x%02x", ack.ReasonCode)
		}
		return nil, fmt.Errorf("agent: MQTT connect: %w", err)
	}
	go func() {
		<-s.c.Done()
		// paho closes the client before it reports the server's
		// DISCONNECT, so give that reason a moment to arrive: it is the
		// one worth telling.
		t := time.NewTimer(200 * time.Millisecond)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.end("connection closed")
		}
	}()
	if cfg.Commands {
		if err := s.Subscribe(ctx, CommandTopics(c.DeviceID)); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// errNotProvisioned refuses a session before the agent has credentials.
var errNotProvisioned = errors.New("agent: no credentials: provision before connecting to MQTT")

// keepAlive is the MQTT keep-alive the session asks for.
func (cfg MQTTConfig) keepAlive() time.Duration {
	if cfg.KeepAlive <= 0 {
		return 30 * time.Second
	}
	return cfg.KeepAlive
}

// gatewayDialer is a TLS dialer to the gateway at addr presenting c.
// The gateway's certificate is checked for cfg.ServerName, or the host of
// addr when that is empty.
func (a *Agent) gatewayDialer(cfg MQTTConfig, c *Credentials, addr string) (*tls.Dialer, error) {
	if addr == "" {
		return nil, errors.New("agent: the gateway's address is required (mqtt.addr in the server's data directory)")
	}
	name := cfg.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("agent: gateway address %q: %w", addr, err)
		}
		name = host
	}
	return &tls.Dialer{NetDialer: cfg.Dialer, Config: &tls.Config{
		Certificates: []tls.Certificate{c.TLSCertificate()},
		RootCAs:      a.cfg.Roots, ServerName: name, MinVersion: tls.VersionTLS12,
	}}, nil
}

// onMessage runs the agent's own commands and hands every message on.
func (a *Agent) onMessage(ctx context.Context, cfg MQTTConfig, topic string, payload []byte) {
	if cfg.Commands {
		if _, handled, err := a.HandleCommand(ctx, topic, payload); err != nil && handled {
			a.log.WarnContext(ctx, "agent: command failed", "topic", topic, "err", err)
		}
	}
	if cfg.OnMessage != nil {
		cfg.OnMessage(topic, payload)
	}
}

func (s *Session) end(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason != "" {
		return
	}
	s.reason = reason
	close(s.done)
}

// DeviceID is the identity the session runs as.
func (s *Session) DeviceID() string { return s.deviceID }

// Publish sends payload on topic at QoS 1 and waits for the gateway's
// answer: ErrNotAuthorized when the gateway refuses the topic,
// ErrSessionEnded when the session ends first.
func (s *Session) Publish(ctx context.Context, topic string, payload []byte) error {
	return publish(ctx, s.c, topic, payload)
}

// publish sends payload on topic at QoS 1 through c.
func publish(ctx context.Context, c *paho.Client, topic string, payload []byte) error {
	rctx, cancel := whileConnected(ctx, c)
	defer cancel()
	ack, err := c.Publish(rctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if ack != nil && ack.ReasonCode == packets.PubackNotAuthorized {
		return fmt.Errorf("publish %s: %w", topic, ErrNotAuthorized)
	}
	if err != nil {
		return fmt.Errorf("agent: publish %s: %w", topic, endedOr(ctx, rctx, err))
	}
	return nil
}

// ErrSessionEnded means the session ended while a request waited for the
// gateway's answer: whether the gateway received it is unknown.
var ErrSessionEnded = errors.New("agent: the session ended before the gateway answered")

// whileConnected is ctx, also cancelled once c's connection has ended.
// paho leaves a request whose connection dropped waiting for its own
// packet timeout (10 s) rather than failing it, so without this a device
// would stall that long on every disconnect before it could see it.
func whileConnected(ctx context.Context, c *paho.Client) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// endedOr is ErrSessionEnded when a request failed because whileConnected
// cancelled rctx, and err otherwise (including the caller's own ctx
// ending).
func endedOr(ctx, rctx context.Context, err error) error {
	if ctx.Err() == nil && rctx.Err() != nil {
		return ErrSessionEnded
	}
	return err
}

// PublishAtMostOnce sends payload on topic at QoS 0: nothing is
// acknowledged, so a refused topic goes unnoticed (the gateway drops it
// and counts an authorization failure). For high-rate telemetry where a
// lost reading does not matter.
func (s *Session) PublishAtMostOnce(ctx context.Context, topic string, payload []byte) error {
	if _, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 0, Payload: payload}); err != nil {
		return fmt.Errorf("agent: publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes to filter at QoS 1: ErrNotAuthorized when the
// gateway refuses it.
func (s *Session) Subscribe(ctx context.Context, filter string) error {
	return subscribe(ctx, s.c, filter)
}

// subscribe subscribes c to filter at QoS 1.
func subscribe(ctx context.Context, c *paho.Client, filter string) error {
	rctx, cancel := whileConnected(ctx, c)
	defer cancel()
	ack, err := c.Subscribe(rctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if ack == nil {
		// paho reports a refusal as an error next to the SUBACK, so only
		// a missing SUBACK is a failure of its own.
		return fmt.Errorf("agent: subscribe %s: %w", filter, endedOr(ctx, rctx, err))
	}
	if len(ack.Reasons) != 1 {
		return fmt.Errorf("agent: subscribe %s: the gateway answered %d reason codes for one filter", filter, len(ack.Reasons))
	}
	if ack.Reasons[0] == packets.SubackNotauthorized {
		return fmt.Errorf("subscribe %s: %w", filter, ErrNotAuthorized)
	}
	if ack.Reasons[0] >= 0x80 {
		return fmt.Errorf("agent: subscribe %s: refused with reason 0x%02x", filter, ack.Reasons[0])
	}
	return nil
}

// Done is closed when the session has ended, by the gateway, the network or
// Close; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended, or nil while it is live.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		return nil
	}
	return errors.New(s.reason)
}

// Close ends the session with a normal DISCONNECT.
func (s *Session) Close() error {
	s.end("closed by the device")
	return s.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}
