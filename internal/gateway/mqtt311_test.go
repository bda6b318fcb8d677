package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	mqtt311 "github.com/eclipse/paho.mqtt.golang"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestMQTT311 runs identity and policy through an MQTT 3.1.1 client, which
// learns of refusals differently: a refused subscription is SUBACK 0x80, a
// refused QoS 0 publish is dropped, a refused QoS 1 publish ends the
// connection (3.1.1 has no negative PUBACK).
func TestMQTT311(t *testing.T) {
	h := newHarness(t)
	d, cred := h.device(fleet.StateActive)
	other, _ := h.device(fleet.StateActive)
	roots := x509.NewCertPool()
	roots.AddCert(h.pki.Root.Certificate())
	_, suspendedCred := h.device(fleet.StateSuspended)
	connectAs := func(cert tls.Certificate, clientID string) (mqtt311.Client, byte, error) {
		opts := mqtt311.NewClientOptions().AddBroker("ssl://" + h.gw.Addr()).SetClientID(clientID).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
			SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
		c := mqtt311.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("connect timed out")
		}
		return c, tok.(*mqtt311.ConnectToken).ReturnCode(), tok.Error()
	}
	// 3.1.1 return codes: 2 identifier rejected, 5 not authorized.
	if _, code, err := connectAs(cred.TLS(), other.ID); err == nil || code != 2 {
		t.Fatalf("connect as another device: return code %d, %v; want 2", code, err)
	}
	if _, code, err := connectAs(suspendedCred.TLS(), suspendedCred.Certificate.Subject.CommonName); err == nil || code != 5 {
		t.Fatalf("connect while suspended: return code %d, %v; want 5", code, err)
	}
	c, _, err := connectAs(cred.TLS(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)

	subscribe := func(filter string) byte {
		tok := c.Subscribe(filter, 1, nil)
		tok.WaitTimeout(5 * time.Second)
		return tok.(*mqtt311.SubscribeToken).Result()[filter]
	}
	if code := subscribe("devices/" + d.ID + "/#"); code != 1 {
		t.Errorf("own subscription: SUBACK %#x, want granted QoS 1", code)
	}
	for _, filter := range []string{"devices/" + other.ID + "/#", "devices/+/x", "#", "$SYS/#"} {
		if code := subscribe(filter); code != 0x80 {
			t.Errorf("subscription to %q: SUBACK %#x, want 0x80", filter, code)
		}
	}
	// QoS 0 has no answer: the refused publish goes first, and once the
	// allowed one behind it on the same connection arrived, the refused one
	// would have too.
	own, others := "devices/"+d.ID+"/telemetry", "devices/"+other.ID+"/telemetry"
	seen := func(topic string) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.seen[topic]
	}
	ownBefore, othersBefore := seen(own), seen(others)
	c.Publish(others, 0, false, "x").WaitTimeout(5 * time.Second)
	c.Publish(own, 0, false, "x").WaitTimeout(5 * time.Second)
	within(t, "QoS 0 publish on its own topic delivered", func() bool { return seen(own) > ownBefore })
	if seen(others) != othersBefore {
		t.Error("QoS 0 publish on another device's topic was delivered")
	}
	c.Publish("devices/"+other.ID+"/telemetry", 1, false, "x")
	within(t, "refused QoS 1 publish ends the 3.1.1 session", func() bool { return !c.IsConnectionOpen() })
}
