package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// handshakeTimeout bounds the TLS handshake, so half-open connections do
// not hold goroutines.
const handshakeTimeout = 10 * time.Second

// deviceConn is a device's TLS connection with the identity its handshake
// proved and the principal the topic policy judges it as. The broker hands
// it back to the hooks as the client's net.Conn, so identity and policy
// travel with the connection and need no lookup table.
type deviceConn struct {
	// Conn is the TLS connection, or a WebSocket over one.
	net.Conn
	identity  pki.Identity
	principal atomic.Pointer[Principal]
	// admitted is the device's status when the session was admitted
	// (empty for birth identities), and connectedAt when; both are set
	// before the session goes live.
	admitted    DeviceAccess
	connectedAt time.Time
	// claimed is the device id the client's certificate names, verified
	// or not, for metering attempts.
	claimed string
	// enforced is why enforcement cut the session off, if it did.
	enforced atomic.Pointer[string]
	// provisioning is whether a provisioning request of this session is
	// being answered.
	provisioning atomic.Bool
	// bytes meters traffic on the wire, under meterID; nil when packet
	// metering is off.
	bytes *meter
}

// Read implements net.Conn, metering the bytes read.
func (c *deviceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.bytes != nil {
		c.bytes.traffic(c.meterID(), int64(n), 0)
	}
	return n, err
}

// Write implements net.Conn, metering the bytes written.
func (c *deviceConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.bytes != nil {
		c.bytes.traffic(c.meterID(), 0, int64(n))
	}
	return n, err
}

// meterID is the device id a connection is metered under.
func (c *deviceConn) meterID() string {
	if c.identity.Kind == pki.IdentityOperational {
		return c.identity.DeviceID
	}
	return c.claimed
}

// policy returns the connection's principal; the zero Principal (no role)
// before admission.
func (c *deviceConn) policy() Principal {
	if p := c.principal.Load(); p != nil {
		return *p
	}
	return Principal{}
}

// presence is the session's presence record at now, for operational
// identities only: a birth certificate names no device record yet.
func (c *deviceConn) presence(now time.Time, connected bool) (store.Presence, bool) {
	if c.identity.Kind != pki.IdentityOperational {
		return store.Presence{}, false
	}
	return store.Presence{
		DeviceID: c.identity.DeviceID, Connected: connected, Remote: c.RemoteAddr().String(),
		ConnectedAt: c.connectedAt, LastSeen: now,
	}, true
}

// admission verifies client certificates at the handshake and prepares
// the connections the listeners hand to the broker.
type admission struct {
	verifier *pki.Verifier
	log      *slog.Logger
	meter    *meter
	// meterBytes is whether connections meter their traffic.
	meterBytes bool
}

// newConn returns a connection record awaiting its handshake.
func (a *admission) newConn() *deviceConn {
	dc := &deviceConn{}
	if a.meterBytes {
		dc.bytes = a.meter
	}
	return dc
}

// verify returns a tls.Config.VerifyConnection that checks the client's
// chain once per handshake (resumed sessions included, so a revoked device
// cannot ride an old session), leaves the identity on dc and meters the
// attempt. ctx bounds the trust and revocation lookups.
func (a *admission) verify(ctx context.Context, dc *deviceConn, remote net.Addr) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			if claim, err := pki.IdentityOf(cs.PeerCertificates[0]); err == nil {
				dc.claimed = claim.DeviceID
			}
		}
		id, err := a.verifier.Verify(ctx, cs.PeerCertificates, time.Now())
		if err != nil {
			// Logged, never told: the device sees only a failed handshake.
			a.log.InfoContext(ctx, "gateway: handshake refused", "remote", remote.String(), "err", err)
			a.meter.attempt(dc.claimed, remote, true)
			if errors.Is(err, pki.ErrRevoked) {
				// The configuration audit looks for devices still trying
				// with a revoked certificate.
				a.meter.count(dc.claimed, func(w *store.MeterWindow) { w.RevokedAttempts++ })
			}
			return err
		}
		dc.identity = id
		a.meter.attempt(dc.meterID(), remote, false)
		return nil
	}
}

// tlsListener is a mochi listener that accepts only clients whose
// certificate chain verifies at the TLS handshake, and hands the broker
// connections that carry the verified identity.
type tlsListener struct {
	id  string
	ln  net.Listener
	tls *tls.Config
	adm *admission

	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ listeners.Listener = (*tlsListener)(nil)

// Init implements listeners.Listener. The socket is bound by New already,
// so a taken port is reported before the broker starts.
func (l *tlsListener) Init(*slog.Logger) error { return nil }

// ID implements listeners.Listener.
func (l *tlsListener) ID() string { return l.id }

// Address implements listeners.Listener.
func (l *tlsListener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *tlsListener) Protocol() string { return "mqtts" }

// Serve implements listeners.Listener: it accepts until Close.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() { l.serveConn(raw, establish) })
	}
}

// serveConn completes the handshake, which verifies the client's chain,
// then gives the connection to the broker.
func (l *tlsListener) serveConn(raw net.Conn, establish listeners.EstablishFn) {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	dc := l.adm.newConn()
	cfg := l.tls.Clone()
	cfg.VerifyConnection = l.adm.verify(ctx, dc, raw.RemoteAddr())
	tc := tls.Server(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		l.adm.log.Debug("gateway: handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		_ = raw.Close()
		return
	}
	cancel()
	dc.Conn = tc
	if err := establish(l.id, dc); err != nil {
		l.adm.log.Debug("gateway: session ended", "remote", raw.RemoteAddr().String(), "err", err)
	}
}

// Close implements listeners.Listener: it stops accepting, closes every
// client through closeClients and waits for connections in flight.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		_ = l.ln.Close()
		closeClients(l.id)
	})
	l.wg.Wait()
}
