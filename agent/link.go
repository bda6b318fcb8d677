package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// Link defaults.
const (
	// DefaultMinBackoff is the first wait before reconnecting.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff bounds the wait between attempts.
	DefaultMaxBackoff = 2 * time.Minute
	// DefaultMaxRefusals is how many times in a row the gateway may refuse
	// the device itself (CONNACK or DISCONNECT "not authorized") before
	// the link gives up: about an hour at DefaultMaxBackoff.
	DefaultMaxRefusals = 30
	// certRefusalLimit is how many handshakes in a row the gateway may
	// refuse the same certificate before the link gives up. Not one:
	// the gateway also refuses, failing closed, when it cannot check
	// revocation for a moment.
	certRefusalLimit = 3
	// connectTimeout bounds one attempt: dial, handshake and CONNACK.
	connectTimeout = 30 * time.Second
	// maxRedirects bounds server redirects followed without a pause, so
	// two gateways pointing at each other cannot spin the link.
	maxRedirects = 3
	// stableSession is how long a session must last for the backoff to
	// start again from MinBackoff (or MaxBackoff, when that is shorter).
	stableSession = time.Minute
	// closeGrace is how long the reason for a lost connection may trail
	// the connection's end: paho closes the client before it reports the
	// gateway's DISCONNECT.
	closeGrace = 200 * time.Millisecond
)

// Errors of a Link.
var (
	// ErrDisconnected is what Publish returns at once while the link has
	// no session: nothing is queued; the caller decides whether the
	// message is worth keeping.
	ErrDisconnected = errors.New("agent: not connected to the gateway")
	// ErrLinkClosed is the link's Err after Close.
	ErrLinkClosed = errors.New("agent: link closed")
	// ErrGatewayRefused is wrapped by a link's Err when the gateway
	// refused the device in a way retrying does not fix (see KeepMQTT).
	ErrGatewayRefused = errors.New("agent: the gateway refused the device")
)

// GatewayError is an MQTT 5 reason code the gateway ended or refused a
// session with.
type GatewayError struct {
	// Code is the reason code (0x80 and above are failures).
	Code byte
	// Reason is the gateway's reason string, if it sent one.
	Reason string
	// ServerReference is where the gateway sent the device (codes 0x9C
	// Use another server and 0x9D Server moved).
	ServerReference string
	// Disconnect is true for a DISCONNECT of a live session, false for a
	// CONNACK refusing one.
	Disconnect bool
}

func (e *GatewayError) Error() string {
	what := "refused the session"
	if e.Disconnect {
		what = "disconnected the device"
	}
	s := fmt.Sprintf("agent: the gateway %s: reason 0x%02x", what, e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.ServerReference != "" {
		s += ", use " + e.ServerReference
	}
	return s
}

// LinkConfig configures a Link: an MQTT session and how it is kept.
type LinkConfig struct {
	MQTTConfig
	// MinBackoff and MaxBackoff bound the wait between attempts
	// (DefaultMinBackoff, DefaultMaxBackoff when zero). The wait doubles
	// from MinBackoff at every failure up to MaxBackoff, and each wait is
	// drawn at random between half and all of it, so devices cut off
	// together do not come back together.
	MinBackoff, MaxBackoff time.Duration
	// MaxRefusals is how many refusals of the device in a row end the
	// link (DefaultMaxRefusals when zero; negative: never).
	MaxRefusals int
	// OnConnect runs when a session is up and its subscriptions are made
	// again; OnDisconnect when it ends, with why. Both run on the link's
	// own goroutine: return quickly, and do not call Close from them.
	OnConnect    func()
	OnDisconnect func(err error)
}

// LinkStatus is a Link's state, for firmware to show or act on.
type LinkStatus struct {
	// Connected is true while a session is up and subscribed.
	Connected bool
	// Addr is the gateway address in use: Config.Addr, or where the
	// gateway redirected the device.
	Addr string
	// Serial is the serial number (lowercase hex) of the certificate of
	// the current or last session.
	Serial string
	// Attempts counts connection attempts; Reconnects the sessions made
	// after the first.
	Attempts, Reconnects int
	// Since is when Connected last changed.
	Since time.Time
	// LastError is why the last session or attempt failed.
	LastError error
}

// Link is an MQTT session with the gateway that KeepMQTT keeps connected.
// Its methods may be called from any goroutine.
type Link struct {
	a      *Agent
	cfg    LinkConfig
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// kick asks the link to check whether the agent's credentials
	// changed (a rotate or rehome command was handled).
	kick chan struct{}
	rand func(n int64) int64

	mu      sync.Mutex
	cur     *linkConn // the live session, nil between sessions
	filters []string
	status  LinkStatus
	everUp  bool  // a session has been up before
	err     error // why the link stopped, once it has
}

// linkConn is one session of a Link.
type linkConn struct {
	c     *paho.Client
	creds *Credentials
	ended chan struct{}

	once   sync.Once
	reason error
}

// end records why the session ended; the first reason wins.
func (lc *linkConn) end(err error) {
	lc.once.Do(func() {
		lc.reason = err
		close(lc.ended)
	})
}

// errRenewed ends a session whose certificate the agent replaced, to
// reconnect with the new one.
var errRenewed = errors.New("agent: credentials changed: reconnecting with them")

// KeepMQTT opens an MQTT 5 session with the gateway and keeps it: whenever
// it ends, the link reconnects with exponential backoff and jitter
// (LinkConfig), until ctx ends, Close is called or the gateway refuses the
// device for good. Every connection uses the agent's credentials of the
// moment, so a certificate renewed by Run, by a rotate command or by
// re-provisioning is used from the next connection on; when the agent
// renews on a command the link itself received (rotate, or a rehome that
// changes the certificate or home), it reconnects at once to use it. Each
// new session makes again every subscription made through the link, and
// the command topics when Commands is set.
//
// Which refusals end the link (Err then wraps ErrGatewayRefused):
//   - the TLS handshake refusing the certificate (revoked, expired, from a
//     CA the gateway does not trust) three times in a row for the same
//     certificate: the gateway also refuses, failing closed, when it
//     cannot check revocation for a moment, so one refusal is not final;
//   - CONNACK 0x8A (Banned), 0x85 (Client identifier not valid), 0x84
//     (Unsupported protocol version) or 0x8C (Bad authentication method):
//     retrying the same session cannot succeed;
//   - CONNACK 0x86 or 0x87, or DISCONNECT 0x87 (not authorized):
//     Muster's gateway answers so for a device whose state may change
//     back (suspended, say; a decommissioned device is banned, 0x8A, and
//     its session cut with DISCONNECT 0x8A). These are retried at
//     MaxBackoff, so a reinstated device comes back by itself, and end
//     the link only after MaxRefusals of them in a row. A gateway that
//     cannot look the device up answers 0x88 (Server unavailable),
//     retried like a network error.
//
// Credentials that changed since the failed attempt (the agent renewed or
// re-provisioned meanwhile) clear the counts and are tried at once. Everything else (network
// errors, the gateway shutting down, a takeover by another session with the
// device's id, 0x88 Server unavailable, ...) is retried without limit.
// CONNACK or DISCONNECT 0x9C (Use another server) or 0x9D (Server moved)
// with a server reference send the link there at once, and it stays there
// until another redirect; ServerName, when set, still checks the
// gateway's certificate.
//
// KeepMQTT returns an error only for a configuration that can never
// connect (no credentials yet, no address, bad backoff bounds); the first
// connection is made in the background, like every other.
func (a *Agent) KeepMQTT(ctx context.Context, cfg LinkConfig) (*Link, error) {
	if a.Credentials() == nil {
		return nil, errNotProvisioned
	}
	if cfg.Addr == "" {
		return nil, errors.New("agent: the gateway's address is required (mqtt.addr in the server's data directory)")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("agent: gateway address %q: %w", cfg.Addr, err)
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("agent: link backoff bounds must not be negative")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("agent: link MinBackoff %v is above MaxBackoff %v", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.MaxRefusals == 0 {
		cfg.MaxRefusals = DefaultMaxRefusals
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Link{
		a: a, cfg: cfg, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), kick: make(chan struct{}, 1),
		rand:   rand.Int64N,
		status: LinkStatus{Addr: cfg.Addr, Since: time.Now()},
	}
	if cfg.Commands {
		l.filters = []string{CommandTopics(a.Credentials().DeviceID)}
	}
	go l.run()
	return l, nil
}

// backoff is the wait before attempt n+1 after n failures in a row:
// between half and all of min(MinBackoff·2ⁿ, MaxBackoff). rnd(k) draws
// uniformly from [0, k).
func backoff(lo, hi time.Duration, n int, rnd func(int64) int64) time.Duration {
	b := hi
	if n < 62 {
		if d := lo << n; d > 0 && d < hi {
			b = d
		}
	}
	half := b / 2
	if b-half <= 0 {
		return b
	}
	return half + time.Duration(rnd(int64(b-half)+1))
}

// run connects and reconnects until the link stops.
func (l *Link) run() {
	defer close(l.done)
	defer l.cancel()
	var (
		failures     int // attempts in a row that did not last
		certRefusals int
		refusals     int
		redirects    int
		lastCreds    *Credentials
	)
	for {
		if l.ctx.Err() != nil {
			l.stop(ErrLinkClosed)
			return
		}
		creds := l.a.Credentials()
		if creds != lastCreds {
			// New credentials deserve a fresh start.
			certRefusals, refusals, lastCreds = 0, 0, creds
		}
		addr := l.Status().Addr
		l.mu.Lock()
		l.status.Attempts++
		l.mu.Unlock()
		lc, err := l.connect(creds, addr)
		if err == nil {
			certRefusals, refusals, redirects = 0, 0, 0
			start := time.Now()
			err = l.serve(lc)
			if time.Since(start) >= min(stableSession, l.cfg.MaxBackoff) {
				// Only a session that lasted starts the backoff over:
				// two sessions taking the device's id from each other
				// (a cloned device) back off like any failure.
				failures = 0
			}
			if l.ctx.Err() != nil {
				l.stop(ErrLinkClosed)
				return
			}
		}
		l.mu.Lock()
		l.status.LastError = err
		l.mu.Unlock()
		l.a.log.Info("agent: gateway session ended; reconnecting", "addr", addr, "err", err)

		if errors.Is(err, errRenewed) || l.a.Credentials() != creds {
			continue
		}
		var ge *GatewayError
		isGateway := errors.As(err, &ge)
		wait := backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, failures, l.rand)
		switch {
		case isGateway && (ge.Code == 0x9C || ge.Code == 0x9D) && ge.ServerReference != "":
			to, perr := serverAddr(ge.ServerReference)
			if perr != nil {
				l.a.log.Warn("agent: unusable server reference; retrying here", "reference", ge.ServerReference, "err", perr)
				break
			}
			l.mu.Lock()
			l.status.Addr = to
			l.mu.Unlock()
			l.a.log.Info("agent: the gateway redirected the device", "to", to)
			if redirects++; redirects <= maxRedirects {
				continue
			}
			redirects = 0
		case isGateway && !ge.Disconnect && permanentConnack(ge.Code):
			l.stop(fmt.Errorf("%w: %w", ErrGatewayRefused, err))
			return
		case isGateway && (ge.Code == packets.ConnackNotAuthorized || (!ge.Disconnect && ge.Code == packets.ConnackBadUsernameOrPassword)):
			if refusals++; l.cfg.MaxRefusals > 0 && refusals >= l.cfg.MaxRefusals {
				l.stop(fmt.Errorf("%w: %d refusals in a row: %w", ErrGatewayRefused, refusals, err))
				return
			}
			wait = backoff(l.cfg.MaxBackoff, l.cfg.MaxBackoff, 0, l.rand)
		case certificateRefused(err):
			if certRefusals++; certRefusals >= certRefusalLimit {
				l.stop(fmt.Errorf("%w: certificate refused %d times in a row: %w", ErrGatewayRefused, certRefusals, err))
				return
			}
		}
		failures++
		if !l.pause(wait, creds) {
			l.stop(ErrLinkClosed)
			return
		}
	}
}

// pause waits d, or less when the agent's credentials change meanwhile;
// false when the link stopped.
func (l *Link) pause(d time.Duration, creds *Credentials) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-l.kick:
			if l.a.Credentials() != creds {
				return true
			}
		}
	}
}

// permanentConnack reports whether a CONNACK refusal cannot be fixed by
// connecting again the same way.
func permanentConnack(code byte) bool {
	switch code {
	case packets.ConnackBanned, packets.ConnackInvalidClientID, packets.ConnackUnsupportedProtocolVersion, packets.ConnackBadAuthenticationMethod:
		return true
	}
	return false
}

// certificateRefused reports whether err is the gateway refusing the
// client certificate at the TLS handshake. Go reports a peer's alert as a
// *net.OpError "remote error" around the alert, whose type is unexported,
// so its text is what tells them apart. With TLS 1.3 the refusal arrives
// after the client's side of the handshake, at the first read.
func certificateRefused(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	switch op.Err.Error() {
	case "tls: bad certificate", "tls: certificate required", "tls: revoked certificate",
		"tls: certificate expired", "tls: unknown certificate authority", "tls: unsupported certificate",
		"tls: unknown certificate", "tls: access denied":
		return true
	}
	return false
}

// alertConn is a gateway connection that tells a refused certificate from
// a lost connection. With TLS 1.3 the client's handshake is over before the
// gateway has judged its certificate, so the gateway's refusal (an alert,
// then close) races the client's CONNECT: the write may fail first, with
// a broken pipe or a reset. A write failing before anything was read looks
// for the alert the gateway sent, and reports it instead.
type alertConn struct {
	net.Conn
	read atomic.Bool // something was read: the session is past admission
}

// alertWait bounds the look for the alert after a failed write.
const alertWait = 2 * time.Second

func (c *alertConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Store(true)
	}
	return n, err
}

func (c *alertConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil || c.read.Load() {
		return n, err
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(alertWait))
	if _, rerr := c.Conn.Read(make([]byte, 1)); certificateRefused(rerr) {
		return n, rerr
	}
	return n, err
}

// serverAddr is the host:port of an MQTT 5 server reference: a URL
// (mqtts://host:port) or host:port; the first of several.
func serverAddr(ref string) (string, error) {
	fields := strings.Fields(ref)
	if len(fields) == 0 {
		return "", errors.New("empty server reference")
	}
	ref = fields[0]
	if strings.Contains(ref, "://") {
		u, err := url.Parse(ref)
		if err != nil {
			return "", err
		}
		if u.Scheme != "mqtts" && u.Scheme != "ssl" && u.Scheme != "tls" {
			return "", fmt.Errorf("scheme %q: the link speaks MQTT over TLS only", u.Scheme)
		}
		ref = u.Host
	}
	if _, _, err := net.SplitHostPort(ref); err != nil {
		ref = net.JoinHostPort(ref, "8883")
	}
	if _, _, err := net.SplitHostPort(ref); err != nil {
		return "", err
	}
	return ref, nil
}

// connect makes one session with creds at addr.
func (l *Link) connect(creds *Credentials, addr string) (*linkConn, error) {
	d, err := l.a.gatewayDialer(l.cfg.MQTTConfig, creds, addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(l.ctx, connectTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent: connect to the gateway %s: %w", addr, err)
	}
	lc := &linkConn{creds: creds, ended: make(chan struct{})}
	lc.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(&alertConn{Conn: conn}),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			l.a.onMessage(l.ctx, l.cfg.MQTTConfig, pr.Packet.Topic, pr.Packet.Payload)
			if l.a.Credentials() != creds {
				// Reconnecting must wait for this handler to return:
				// paho's shutdown waits for it.
				select {
				case l.kick <- struct{}{}:
				default:
				}
			}
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			ge := &GatewayError{Code: d.ReasonCode, Disconnect: true}
			if d.Properties != nil {
				ge.Reason, ge.ServerReference = d.Properties.ReasonString, d.Properties.ServerReference
			}
			lc.end(ge)
		},
		OnClientError: func(err error) { lc.end(fmt.Errorf("agent: connection lost: %w", err)) },
	})
	ack, err := lc.c.Connect(ctx, &paho.Connect{ClientID: creds.DeviceID, KeepAlive: uint16(l.cfg.keepAlive() / time.Second), CleanStart: true})
	if err != nil {
		conn.Close()
		if ack != nil && ack.ReasonCode >= 0x80 {
			ge := &GatewayError{Code: ack.ReasonCode}
			if ack.Properties != nil {
				ge.Reason, ge.ServerReference = ack.Properties.ReasonString, ack.Properties.ServerReference
			}
			return nil, ge
		}
		return nil, fmt.Errorf("agent: MQTT connect to %s: %w", addr, err)
	}
	return lc, nil
}

// serve runs one session until it ends and returns why.
func (l *Link) serve(lc *linkConn) error {
	l.mu.Lock()
	l.cur = lc
	filters := slices.Clone(l.filters)
	l.status.Serial = serialHex(lc.creds.Certificate)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.cur = nil
		wasUp := l.status.Connected
		l.status.Connected, l.status.Since = false, time.Now()
		l.mu.Unlock()
		if wasUp && l.cfg.OnDisconnect != nil {
			l.cfg.OnDisconnect(lc.reason)
		}
	}()
	for _, f := range filters {
		if err := subscribe(l.ctx, lc.c, f); err != nil {
			if !errors.Is(err, ErrNotAuthorized) {
				lc.end(err)
				_ = lc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
				return err
			}
			// A refused filter (quarantine, say) does not keep the
			// session from being useful.
			l.a.log.Warn("agent: subscription refused on reconnect", "filter", f, "err", err)
		}
	}
	l.mu.Lock()
	l.status.Connected, l.status.Since = true, time.Now()
	if l.everUp {
		l.status.Reconnects++
	}
	l.everUp = true
	l.mu.Unlock()
	if l.cfg.OnConnect != nil {
		l.cfg.OnConnect()
	}
	for {
		select {
		case <-lc.ended:
			_ = lc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
			return lc.reason
		case <-lc.c.Done():
			t := time.NewTimer(closeGrace)
			select {
			case <-lc.ended:
			case <-t.C:
				lc.end(errors.New("agent: connection closed"))
			}
			t.Stop()
			return lc.reason
		case <-l.ctx.Done():
			lc.end(ErrLinkClosed)
			_ = lc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
			return lc.reason
		case <-l.kick:
			if l.a.Credentials() != lc.creds {
				l.a.log.Info("agent: credentials changed; reconnecting to use them")
				lc.end(errRenewed)
				_ = lc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
				return lc.reason
			}
		}
	}
}

// serialHex is a certificate's serial as Muster prints it.
func serialHex(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// stop ends the link with err as its Err.
func (l *Link) stop(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	if !errors.Is(err, ErrLinkClosed) {
		l.status.LastError = err
		l.a.log.Error("agent: gateway link stopped", "err", err)
	}
}

// live is the current session, or ErrDisconnected.
func (l *Link) live() (*linkConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, l.err)
	}
	if l.cur == nil {
		return nil, ErrDisconnected
	}
	return l.cur, nil
}

// Publish sends payload on topic at QoS 1 and waits for the gateway's
// answer (ErrNotAuthorized when it refuses the topic). Without a session it
// returns ErrDisconnected at once, and an error wrapping ErrDisconnected
// when the session ends before the gateway answered (the message may or may
// not have arrived). Nothing is queued or sent again: the caller decides
// what is worth keeping.
func (l *Link) Publish(ctx context.Context, topic string, payload []byte) error {
	lc, err := l.live()
	if err != nil {
		return fmt.Errorf("agent: publish %s: %w", topic, err)
	}
	err = publish(ctx, lc.c, topic, payload)
	if err != nil && !errors.Is(err, ErrNotAuthorized) {
		select {
		case <-lc.c.Done():
			// The session ended under the publish: say so plainly.
			return fmt.Errorf("%w: %w", ErrDisconnected, err)
		default:
		}
	}
	return err
}

// Subscribe subscribes to filter at QoS 1 now, if the link is connected,
// and again at every new session; messages go to OnMessage. While
// disconnected it only records the filter (returning nil), for the next
// session. ErrNotAuthorized when the gateway refuses it now; the filter
// is then not kept.
func (l *Link) Subscribe(ctx context.Context, filter string) error {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return fmt.Errorf("agent: subscribe %s: %w: %w", filter, ErrDisconnected, l.err)
	}
	known := slices.Contains(l.filters, filter)
	if !known {
		l.filters = append(l.filters, filter)
	}
	lc := l.cur
	l.mu.Unlock()
	if lc == nil {
		return nil
	}
	err := subscribe(ctx, lc.c, filter)
	if errors.Is(err, ErrNotAuthorized) && !known {
		l.mu.Lock()
		l.filters = slices.DeleteFunc(l.filters, func(f string) bool { return f == filter })
		l.mu.Unlock()
	}
	return err
}

// Status is the link's state now.
func (l *Link) Status() LinkStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// DeviceID is the identity the link connects as.
func (l *Link) DeviceID() string { return l.a.Credentials().DeviceID }

// Done is closed once the link has stopped for good: Close, ctx, or a
// refusal retrying cannot fix. No goroutine of the link is left then.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err is nil while the link runs; after Done, ErrLinkClosed when Close or
// ctx stopped it, or an error wrapping ErrGatewayRefused.
func (l *Link) Err() error {
	select {
	case <-l.done:
	default:
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close ends the session with a normal DISCONNECT, stops reconnecting and
// waits until the link's goroutines are gone.
func (l *Link) Close() error {
	l.cancel()
	<-l.done
	return nil
}
