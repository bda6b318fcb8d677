package server

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
)

// freezeProxy relays one TCP connection to a target. Once frozen it drops
// what the server sends, so a request the client makes gets no answer,
// and reports the client's next bytes on sent.
type freezeProxy struct {
	ln     net.Listener
	frozen atomic.Bool
	sent   chan struct{}
	client chan net.Conn
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, sent: make(chan struct{}, 1), client: make(chan net.Conn, 1)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		p.client <- c
		go func() { // client → server
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if p.frozen.Load() {
						select {
						case p.sent <- struct{}{}:
						default:
						}
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // server → client, dropped once frozen
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !p.frozen.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
						c.Close()
					}
					return
				}
			}
		}()
	}()
	return p
}

// TestAgentPublishFailsWhenSessionDrops: a QoS 1 publish waiting for its
// PUBACK when the connection drops returns ErrSessionEnded, instead of
// waiting out paho's own packet timeout as if the gateway were just slow.
func TestAgentPublishFailsWhenSessionDrops(t *testing.T) {
	n := startE2ENode(t)
	a := n.provisionedAgent(t, "SN-31")
	p := startFreezeProxy(t, n.srv.gw.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := a.ConnectMQTT(ctx, agent.MQTTConfig{Addr: p.ln.Addr().String(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	topic := "devices/" + s.DeviceID() + "/telemetry"
	if err := s.Publish(ctx, topic, []byte(`{}`)); err != nil {
		t.Fatalf("publish through the proxy: %v", err)
	}

	p.frozen.Store(true)
	result := make(chan error, 1)
	go func() { result <- s.Publish(ctx, topic, []byte(`{}`)) }()
	select {
	case <-p.sent: // the PUBLISH is on its way; its PUBACK will be dropped
	case <-ctx.Done():
		t.Fatal("the publish never left the device")
	}
	(<-p.client).Close()
	err = <-result
	if !errors.Is(err, agent.ErrSessionEnded) {
		t.Fatalf("publish when the connection dropped: %v, want ErrSessionEnded", err)
	}
	<-s.Done()
}
