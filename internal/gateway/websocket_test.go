package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestWebSocket(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.WSAddr = "127.0.0.1:0" })
	ctx := context.Background()
	d, cred := h.device(fleet.StateActive)
	revoked, revokedCred := h.device(fleet.StateActive)
	if _, err := h.rev.RevokeDeviceCertificates(ctx, revoked.ID, 1, "test"); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(h.pki.Root.Certificate())
	dial := func(cert tls.Certificate, clientID string) (*paho.Client, error) {
		dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second,
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
		ws, _, err := dialer.Dial("wss://"+h.gw.WSAddr()+"/mqtt", nil)
		if err != nil {
			return nil, err
		}
		c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(&wsConn{ws: ws})})
		c.SetDebugLogger(h.log.client(clientID))
		c.SetErrorLogger(h.log.client(clientID))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c.Connect(cctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}); err != nil {
			ws.Close()
			return nil, err
		}
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		return c, nil
	}
	if _, err := dial(revokedCred.TLS(), revoked.ID); err == nil {
		t.Fatal("a revoked device connected over WebSocket")
	}
	if _, err := dial(cred.TLS(), revoked.ID); err == nil {
		t.Fatal("a device connected over WebSocket as another")
	}
	c, err := dial(cred.TLS(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, delivered := h.publish(c, "devices/"+d.ID+"/telemetry"); !ok || !delivered {
		t.Fatal("own telemetry over WebSocket refused")
	}
	if ok, delivered := h.publish(c, "devices/"+revoked.ID+"/telemetry"); ok || delivered {
		t.Fatal("another device's topic accepted over WebSocket")
	}
	if h.subscribe(c, "$SYS/#") {
		t.Fatal("$SYS subscription granted over WebSocket")
	}
	h.setState(d.ID, fleet.StateSuspended)
	within(t, "WebSocket session dropped after suspension", closed(c))
}
