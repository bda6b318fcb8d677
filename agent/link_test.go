package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

func TestLinkBackoffBoundsAndJitter(t *testing.T) {
	lo, hi := time.Second, 2*time.Minute
	low := func(int64) int64 { return 0 }
	top := func(k int64) int64 { return k - 1 }
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := backoff(lo, hi, n, top); got != want {
			t.Errorf("after %d failures: longest wait %v, want %v", n, got, want)
		}
		if got := backoff(lo, hi, n, low); got != want/2 {
			t.Errorf("after %d failures: shortest wait %v, want %v", n, got, want/2)
		}
	}
	// Capped at MaxBackoff however many failures, without overflow.
	for _, n := range []int{7, 8, 20, 62, 63, 64, 1000} {
		if got := backoff(lo, hi, n, top); got != hi {
			t.Errorf("after %d failures: %v, want the cap %v", n, got, hi)
		}
		if got := backoff(lo, hi, n, low); got != hi/2 {
			t.Errorf("after %d failures: shortest %v, want %v", n, got, hi/2)
		}
	}
	// With the real random source every wait stays in [b/2, b] and they
	// are not all the same: devices cut off together spread out.
	seen := map[time.Duration]bool{}
	for range 200 {
		d := backoff(lo, hi, 3, rand.Int64N)
		if d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("wait %v outside [4s, 8s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits in 200: no jitter", len(seen))
	}
	// A nanosecond bound cannot be halved: it is used as it is.
	if got := backoff(time.Nanosecond, time.Nanosecond, 0, top); got != time.Nanosecond {
		t.Fatalf("1ns bounds: %v", got)
	}
}

func TestKeepMQTTBadConfig(t *testing.T) {
	a, err := New(Config{Server: "https://muster.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.KeepMQTT(ctx, LinkConfig{MQTTConfig: MQTTConfig{Addr: "localhost:8883"}}); !errors.Is(err, errNotProvisioned) || !strings.Contains(err.Error(), "provision") {
		t.Fatalf("before provisioning: %v, want a clear 'provision first' error", err)
	}
	a.setCredentials(&Credentials{DeviceID: "dev_1"})
	for _, tc := range []struct {
		name string
		cfg  LinkConfig
		want string
	}{
		{"no address", LinkConfig{}, "address is required"},
		{"address without port", LinkConfig{MQTTConfig: MQTTConfig{Addr: "gateway.example"}}, "gateway address"},
		{"negative backoff", LinkConfig{MQTTConfig: MQTTConfig{Addr: "localhost:8883"}, MinBackoff: -time.Second}, "negative"},
		{"min above max", LinkConfig{MQTTConfig: MQTTConfig{Addr: "localhost:8883"}, MinBackoff: time.Minute, MaxBackoff: time.Second}, "above MaxBackoff"},
	} {
		l, err := a.KeepMQTT(ctx, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
		if l != nil {
			t.Errorf("%s: a link was started", tc.name)
		}
	}
}

func TestLinkServerReference(t *testing.T) {
	for in, want := range map[string]string{
		"mqtts://eu.example:8883":                "eu.example:8883",
		"eu.example:1883":                        "eu.example:1883",
		"eu.example":                             "eu.example:8883",
		"mqtts://[::1]:9000 mqtts://b.example:1": "[::1]:9000",
		"ssl://eu.example":                       "eu.example:8883",
	} {
		if got, err := serverAddr(in); err != nil || got != want {
			t.Errorf("server reference %q: %q, %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", "ws://eu.example:80/mqtt", "mqtt://eu.example:1883"} {
		if got, err := serverAddr(bad); err == nil {
			t.Errorf("server reference %q: %q, want an error", bad, got)
		}
	}
}

func TestLinkCertificateRefusal(t *testing.T) {
	// A real TLS 1.3 server that refuses every client certificate: the
	// client sees the alert at its first read, as with the gateway.
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(tls.ConnectionState) error { return errors.New("revoked") }})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func() net.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatalf("TLS 1.3 completes the client's side: %v", err)
		}
		return c
	}
	// Seen at the first read (the CONNACK paho waits for)...
	c := dial()
	_, err = c.Read(make([]byte, 1))
	c.Close()
	if !certificateRefused(err) {
		t.Fatalf("refused client certificate: %v not recognised", err)
	}
	// ... or when the CONNECT's write fails first, once the gateway has
	// closed: the alert is looked for then.
	ac := &alertConn{Conn: dial()}
	defer ac.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err = ac.Write(make([]byte, 512)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a refused connection never failed")
		}
	}
	if !certificateRefused(err) {
		t.Fatalf("failed write on a refused connection: %v, want the gateway's alert", err)
	}
	for _, other := range []error{errors.New("tls: bad certificate"), &net.OpError{Op: "dial", Err: errors.New("connection refused")}, context.DeadlineExceeded} {
		if certificateRefused(other) {
			t.Errorf("%v taken for a certificate refusal", other)
		}
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(crand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)},
		&x509.Certificate{SerialNumber: big.NewInt(1)}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
