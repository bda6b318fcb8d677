package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crypto/x509"
	"net"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/fleet"
)

// BenchmarkConnect measures the connection rate: TCP, the TLS handshake
// with the certificate chain and revocation checked inside it, and an
// MQTT 5 CONNECT admitted by device state, end to end on loopback.
func BenchmarkConnect(b *testing.B) {
	h := newHarness(b)
	// One device per worker: workers sharing a client id would take over
	// each other's sessions mid-handshake.
	const workers = 16
	ids := make([]string, workers)
	certs := make([]tls.Certificate, workers)
	for i := range workers {
		d, cred := h.device(fleet.StateActive)
		ids[i], certs[i] = d.ID, cred.TLS()
	}
	var next atomic.Int64
	b.SetParallelism(workers / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := int(next.Add(1)-1) % workers
		for pb.Next() {
			c, err := h.connect(certs[w], ids[w])
			if err != nil {
				b.Error(err)
				return
			}
			_ = c.Disconnect(&paho.Disconnect{})
			// Wait for the broker to end the session, so the next
			// connection is not a takeover.
			<-c.Done()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
}

// BenchmarkTelemetry measures QoS 0 telemetry through the broker to a
// subscriber, with metering on and with packet metering off (the bare
// broker), in the same run, so their ratio is metering's cost.
func BenchmarkTelemetry(b *testing.B) {
	for _, metered := range []bool{false, true} {
		name := "bare"
		if metered {
			name = "metered"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, func(c *Config) { c.DisablePacketMetering = !metered })
			const publishers = 8
			var received atomic.Int64
			if err := h.gw.broker.Subscribe("devices/+/telemetry", 2, func(*mqtt.Client, packets.Subscription, packets.Packet) {
				received.Add(1)
			}); err != nil {
				b.Fatal(err)
			}
			clients := make([]*paho.Client, publishers)
			topics := make([]string, publishers)
			for i := range clients {
				d, cred := h.device(fleet.StateActive)
				clients[i] = h.mustConnect(cred.TLS(), d.ID)
				topics[i] = "devices/" + d.ID + "/telemetry"
			}
			payload := []byte(`{"t":21.5,"rh":40}`)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/publishers + 1
			for i, c := range clients {
				wg.Go(func() {
					ctx := context.Background()
					for range per {
						if _, err := c.Publish(ctx, &paho.Publish{Topic: topics[i], QoS: 0, Payload: payload}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			want := int64(per * publishers)
			deadline := time.Now().Add(30 * time.Second)
			for received.Load() < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestManyConnections holds MUSTER_GATEWAY_CONNECTIONS concurrent mTLS
// connections (from 127.0.0.1 to 127.0.0.4 as source addresses), each
// verified at the handshake and held by the broker awaiting CONNECT, and
// reports the handshake rate and the heap they take. Full MQTT sessions
// need a device and certificate each; BenchmarkConnect measures those. It is skipped unless the
// variable is set: 20,000 needs a raised open-files limit.
func TestManyConnections(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MUSTER_GATEWAY_CONNECTIONS"))
	if n <= 0 {
		t.Skip("set MUSTER_GATEWAY_CONNECTIONS to run")
	}
	h := newHarness(t)
	const devices = 64 // certificates are reused: one session per client id
	creds := make([]tls.Certificate, devices)
	ids := make([]string, devices)
	for i := range creds {
		d, cred := h.device(fleet.StateActive)
		creds[i], ids[i] = cred.TLS(), d.ID
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	conns := make([]*tls.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var failed atomic.Int64
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := h.dialRaw(creds[i%devices], fmt.Sprintf("127.0.0.%d", 1+i%4))
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d TLS sessions (%d failed) in %v: %.0f handshakes/s; heap %.1f MiB, %.1f KiB per connection",
		n, failed.Load(), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
		float64(after.HeapInuse)/(1<<20), float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n)/1024)
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d connections failed: the number held is not what was asked for", f, n)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// dialRaw completes a verified TLS handshake with the gateway from source.
func (h *harness) dialRaw(cert tls.Certificate, source string) (*tls.Conn, error) {
	roots := x509.NewCertPool()
	roots.AddCert(h.pki.Root.Certificate())
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", h.gw.Addr(), &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		// TLS 1.2 makes the server's verdict part of the handshake the
		// client waits for.
		MaxVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
