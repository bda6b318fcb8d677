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
	connect := func(clientID string) (mqtt311.Client, error) {
		opts := mqtt311.NewClientOptions().AddBroker("ssl://" + h.gw.Addr()).SetClientID(clientID).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
			SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{cred.TLS()}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
		c := mqtt311.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatal("connect timed out")
		}
		return c, tok.Error()
	}
	if _, err := connect(other.ID); err == nil {
		t.Fatal("connected as another device")
	}
	c, err := connect(d.ID)
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
	for topic, want := range map[string]bool{
		"devices/" + d.ID + "/telemetry":     true,
		"devices/" + other.ID + "/telemetry": false,
	} {
		h.mu.Lock()
		before := h.seen[topic]
		h.mu.Unlock()
		c.Publish(topic, 0, false, "x").WaitTimeout(5 * time.Second)
		time.Sleep(50 * time.Millisecond)
		h.mu.Lock()
		delivered := h.seen[topic] > before
		h.mu.Unlock()
		if delivered != want {
			t.Errorf("QoS 0 publish to %q delivered = %v, want %v", topic, delivered, want)
		}
	}
	c.Publish("devices/"+other.ID+"/telemetry", 1, false, "x")
	within(t, "refused QoS 1 publish ends the 3.1.1 session", func() bool { return !c.IsConnectionOpen() })
}
