package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsPath is where MQTT over WebSocket is served, as browsers' and most
// clients' default.
const wsPath = "/mqtt"

// wsListener serves MQTT over WebSocket over TLS, with client
// certificates verified at the TLS handshake exactly as on the MQTT
// listener.
type wsListener struct {
	id  string
	ln  net.Listener
	srv *http.Server
	adm *admission
	// upgrader accepts the "mqtt" subprotocol. Origins are not checked:
	// the client certificate, not a browser origin, authenticates.
	upgrader websocket.Upgrader

	establish listeners.EstablishFn
	closeOnce sync.Once
}

var _ listeners.Listener = (*wsListener)(nil)

// wsConnKey finds a connection's deviceConn in its context.
type wsConnKey struct{}

// newWSListener wraps a bound socket; base is the TLS configuration the
// MQTT listener uses.
func newWSListener(id string, ln net.Listener, base *tls.Config, adm *admission) *wsListener {
	l := &wsListener{id: id, adm: adm, upgrader: websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  func(*http.Request) bool { return true },
	}}
	cfg := base.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		dc, ok := hello.Context().Value(wsConnKey{}).(*deviceConn)
		if !ok {
			return nil, errors.New("gateway: websocket connection without a record")
		}
		c := cfg.Clone()
		c.GetConfigForClient = nil
		c.VerifyConnection = adm.verify(hello.Context(), dc, hello.Conn.RemoteAddr())
		return c, nil
	}
	l.ln = tls.NewListener(ln, cfg)
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ReadHeaderTimeout: handshakeTimeout,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, wsConnKey{}, adm.newConn())
		},
		ErrorLog: slog.NewLogLogger(adm.log.Handler(), slog.LevelDebug),
	}
	return l
}

func (l *wsListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	dc, _ := r.Context().Value(wsConnKey{}).(*deviceConn)
	if dc == nil || dc.identity.Kind == "" || r.URL.Path != wsPath {
		http.NotFound(w, r)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	// Each upgrade gets its own record: a second upgrade on a kept-alive
	// HTTP connection must not share a session's principal.
	conn := &deviceConn{Conn: &wsConn{ws: ws}, identity: dc.identity, claimed: dc.claimed, bytes: dc.bytes}
	if err := l.establish(l.id, conn); err != nil {
		l.adm.log.Debug("gateway: websocket session ended", "remote", r.RemoteAddr, "err", err)
	}
}

// Init implements listeners.Listener; the socket is bound already.
func (l *wsListener) Init(*slog.Logger) error { return nil }

// ID implements listeners.Listener.
func (l *wsListener) ID() string { return l.id }

// Address implements listeners.Listener.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *wsListener) Protocol() string { return "wss" }

// Serve implements listeners.Listener.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	_ = l.srv.Serve(l.ln)
}

// Close implements listeners.Listener.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		closeClients(l.id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx)
	})
}

// wsConn is a WebSocket as a net.Conn carrying MQTT in binary messages.
type wsConn struct {
	ws *websocket.Conn
	r  io.Reader
	// writeMu serialises writers: a WebSocket allows one at a time, and
	// MQTT clients write from several goroutines (publishes, acks, pings).
	writeMu sync.Mutex
}

// errTextFrame refuses text messages, which MQTT over WebSocket forbids.
var errTextFrame = errors.New("gateway: MQTT over WebSocket must use binary messages")

// Read reads across message boundaries: MQTT packets need not align with
// WebSocket messages.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                      { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn; gorilla's write deadline is
// writer state, so it is set under the write lock.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.ws.SetWriteDeadline(t)
}

// SetDeadline implements net.Conn.
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.SetWriteDeadline(t))
}
