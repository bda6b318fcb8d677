package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/region"
)

// linkDeadline is how long the link tests wait for anything: generous, as
// the machine may be busy; nothing is asserted about how fast.
const linkDeadline = 30 * time.Second

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(linkDeadline); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, linkDeadline)
		}
	}
}

// provisionedAgent mints a device and provisions it with the agent.
func (n *testNode) provisionedAgent(t *testing.T, serial string) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{Server: "https://" + n.srv.DeviceAddr(), Roots: n.roots, Birth: n.mint(t, serial)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Provision(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

// testLink is a link under test with what it saw.
type testLink struct {
	*agent.Link
	// messages are the topics and payloads OnMessage received.
	messages chan string
	// dials counts TCP connections the link opened.
	dials atomic.Int64
}

// keepLink starts a link of a to n's gateway with short backoffs, closed
// at the end of the test.
func (n *testNode) keepLink(t *testing.T, a *agent.Agent, mod func(*agent.LinkConfig)) *testLink {
	t.Helper()
	tl := &testLink{messages: make(chan string, 64)}
	cfg := agent.LinkConfig{
		MQTTConfig: agent.MQTTConfig{
			Addr: n.srv.gw.Addr(), ServerName: "localhost",
			Dialer: &net.Dialer{Control: func(string, string, syscall.RawConn) error {
				tl.dials.Add(1)
				return nil
			}},
			OnMessage: func(topic string, payload []byte) {
				select {
				case tl.messages <- topic + " " + string(payload):
				default:
				}
			},
		},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := a.KeepMQTT(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	tl.Link = l
	return tl
}

// receive waits for want among the link's messages.
func (tl *testLink) receive(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(linkDeadline)
	for {
		select {
		case got := <-tl.messages:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("the link never delivered %q (status %+v)", want, tl.Status())
		}
	}
}

// sendReboot sends device id a reboot command and returns the message the
// device should see.
func (n *testNode) sendReboot(t *testing.T, id, tag string) string {
	t.Helper()
	if _, err := n.admin.SendCommand(context.Background(), id, client.CommandRequest{Topic: "reboot", Payload: `{"tag":"` + tag + `"}`}); err != nil {
		t.Fatal(err)
	}
	return "devices/" + id + "/commands/reboot {\"tag\":\"" + tag + "\"}"
}

// TestAgentLinkReconnectsAfterTakeover: another session with the device's
// id takes the link's over; the link reconnects on its own and its
// subscriptions work again.
func TestAgentLinkReconnectsAfterTakeover(t *testing.T) {
	n := startE2ENode(t)
	ctx := context.Background()
	a := n.provisionedAgent(t, "SN-20")
	id := a.Credentials().DeviceID
	var ups, downs atomic.Int64
	l := n.keepLink(t, a, func(c *agent.LinkConfig) {
		c.OnConnect = func() { ups.Add(1) }
		c.OnDisconnect = func(error) { downs.Add(1) }
	})
	// Subscribed while perhaps not yet connected: kept for every session.
	if err := l.Subscribe(ctx, agent.CommandTopics(id)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "first connection", func() bool { return l.Status().Connected })
	// Another device's commands are refused, and not kept.
	if err := l.Subscribe(ctx, "devices/+/commands/#"); !errors.Is(err, agent.ErrNotAuthorized) {
		t.Fatalf("subscribing to every device's commands: %v, want ErrNotAuthorized", err)
	}
	l.receive(t, n.sendReboot(t, id, "before"))

	takeoversBefore := n.srv.gw.Takeovers()
	_, _ = mqttSession(t, n.srv.gw.Addr(), n.roots, a.Credentials().TLSCertificate(), id)
	waitUntil(t, "reconnection after the takeover", func() bool {
		s := l.Status()
		return s.Connected && s.Reconnects >= 1
	})
	// The link took the session back: a takeover of its own.
	if got := n.srv.gw.Takeovers() - takeoversBefore; got < 2 {
		t.Fatalf("%d takeovers, want the test's and the link's", got)
	}
	var ge *agent.GatewayError
	if err := l.Status().LastError; !errors.As(err, &ge) || ge.Code != 0x8E || !ge.Disconnect {
		t.Fatalf("last error %v, want the gateway's DISCONNECT 0x8E (session taken over)", err)
	}
	l.receive(t, n.sendReboot(t, id, "after"))
	if err := l.Publish(ctx, "devices/"+id+"/telemetry", []byte(`{"t":1}`)); err != nil {
		t.Fatalf("publish after reconnecting: %v", err)
	}
	if u, d := ups.Load(), downs.Load(); u < 2 || d < 1 {
		t.Fatalf("OnConnect ran %d times and OnDisconnect %d, want at least 2 and 1", u, d)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("a live link reports %v", err)
	}
}

// TestAgentLinkRotateReconnectsWithNewCertificate: Muster's rotate command
// makes the agent renew, and the link reconnects at once with the new
// certificate. The gateway's side is checked by revoking the old
// certificate: the link's session survives the enforcement that cuts off a
// sentinel device revoked after it.
func TestAgentLinkRotateReconnectsWithNewCertificate(t *testing.T) {
	n := startE2ENode(t)
	ctx := context.Background()
	a := n.provisionedAgent(t, "SN-21")
	id := a.Credentials().DeviceID
	l := n.keepLink(t, a, func(c *agent.LinkConfig) { c.Commands = true })
	waitUntil(t, "first connection", func() bool { return l.Status().Connected })
	old := l.Status().Serial
	if old == "" || old != a.Credentials().Certificate.SerialNumber.Text(16) {
		t.Fatalf("link serial %q, want the agent's certificate's", old)
	}

	// Certificates carry whole seconds: a rotate in the same second as the
	// issue would look older than the certificate.
	time.Sleep(1100 * time.Millisecond)
	if sent, err := n.admin.RotateDevice(ctx, id, "key rotation policy"); err != nil || !sent.Connected {
		t.Fatalf("rotate: %+v, %v", sent, err)
	}
	waitUntil(t, "reconnection with the renewed certificate", func() bool {
		s := l.Status()
		return s.Connected && s.Reconnects >= 1 && s.Serial != old
	})
	st := l.Status()
	if st.Serial != a.Credentials().Certificate.SerialNumber.Text(16) {
		t.Fatalf("link serial %s, agent's certificate %s", st.Serial, a.Credentials().Certificate.SerialNumber.Text(16))
	}
	if st.Reconnects != 1 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "credentials changed") {
		t.Fatalf("status %+v: want one reconnection, for the new credentials", st)
	}
	certs, err := n.admin.DeviceCertificates(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var oldCA string
	serials := map[string]bool{}
	for _, c := range certs {
		serials[c.Serial] = true
		if c.Serial == old {
			oldCA = c.CAID
		}
	}
	if oldCA == "" || !serials[st.Serial] {
		t.Fatalf("device certificates %v: want the old %s and the new %s", serials, old, st.Serial)
	}

	// A sentinel device with a live session, revoked after the old
	// certificate: once it is cut off, enforcement has judged the link's
	// session with the old certificate revoked too.
	b := n.provisionedAgent(t, "SN-22")
	sentinel, err := b.ConnectMQTT(ctx, agent.MQTTConfig{Addr: n.srv.gw.Addr(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Close()
	if _, err := n.admin.RevokeCertificate(ctx, oldCA, old, client.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if _, err := n.admin.RevokeDeviceCertificates(ctx, b.Credentials().DeviceID, client.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sentinel.Done():
	case <-time.After(linkDeadline):
		t.Fatal("the revoked sentinel's session was not cut off")
	}
	if s := l.Status(); !s.Connected || s.Reconnects != st.Reconnects {
		t.Fatalf("after revoking the old certificate: %+v, want the link's session untouched", s)
	}
	l.receive(t, n.sendReboot(t, id, "renewed"))
}

// TestAgentLinkStopsForRevokedDevice: once the device's certificate is
// revoked the link gives up after a few refused handshakes and stops
// dialing.
func TestAgentLinkStopsForRevokedDevice(t *testing.T) {
	n := startE2ENode(t)
	ctx := context.Background()
	a := n.provisionedAgent(t, "SN-23")
	l := n.keepLink(t, a, nil)
	waitUntil(t, "first connection", func() bool { return l.Status().Connected })
	if _, err := n.admin.RevokeDeviceCertificates(ctx, a.Credentials().DeviceID, client.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(linkDeadline):
		t.Fatalf("the link still runs for a revoked device: %+v, %d dials", l.Status(), l.dials.Load())
	}
	if err := l.Err(); !errors.Is(err, agent.ErrGatewayRefused) {
		t.Fatalf("link error %v, want ErrGatewayRefused", err)
	}
	// One dial for the session, then the refused handshakes: Done means
	// the link's goroutine is gone, so none can follow.
	if d := l.dials.Load(); d < 2 || d > 4 {
		t.Fatalf("%d dials, want the first and at most 3 refused", d)
	}
	if err := l.Publish(ctx, "devices/"+a.Credentials().DeviceID+"/telemetry", nil); !errors.Is(err, agent.ErrDisconnected) {
		t.Fatalf("publish on a stopped link: %v, want ErrDisconnected", err)
	}
}

// TestAgentLinkSuspendedRetriesDecommissionedStops: the gateway refuses a
// suspended device as not authorized (0x87), which the link retries, so a
// reinstated device comes back; a decommissioned one is banned (0x8A) and
// the link stops at once.
func TestAgentLinkSuspendedRetriesDecommissionedStops(t *testing.T) {
	n := startE2ENode(t)
	ctx := context.Background()
	a := n.provisionedAgent(t, "SN-24")
	id := a.Credentials().DeviceID
	l := n.keepLink(t, a, func(c *agent.LinkConfig) { c.MaxRefusals = 5; c.Commands = true })
	waitUntil(t, "first connection", func() bool { return l.Status().Connected })
	waitUntil(t, "activation", func() bool {
		d, err := n.admin.GetDevice(ctx, id)
		return err == nil && d.Lifecycle.State == client.StateActive
	})

	if _, err := n.admin.SetState(ctx, id, client.StateSuspended, "test"); err != nil {
		t.Fatal(err)
	}
	refused := func() bool {
		var ge *agent.GatewayError
		return errors.As(l.Status().LastError, &ge) && ge.Code == 0x87 && !ge.Disconnect
	}
	waitUntil(t, "a refused reconnection while suspended", refused)
	attempts := l.Status().Attempts
	waitUntil(t, "another attempt while suspended", func() bool { return l.Status().Attempts > attempts })
	if err := l.Err(); err != nil {
		t.Fatalf("the link gave up on a suspended device: %v", err)
	}
	reconnects := l.Status().Reconnects
	if _, err := n.admin.SetState(ctx, id, client.StateActive, "reinstated"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reconnection once reinstated", func() bool {
		s := l.Status()
		return s.Connected && s.Reconnects > reconnects
	})
	l.receive(t, n.sendReboot(t, id, "reinstated"))

	if _, err := n.admin.Decommission(ctx, id, client.DecommissionRequest{Reason: "end of life",
		Wipe: client.WipeAttestation{Method: "crypto-erase", By: "test"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(linkDeadline):
		t.Fatalf("the link still runs for a decommissioned device: %+v", l.Status())
	}
	var ge *agent.GatewayError
	if err := l.Err(); !errors.Is(err, agent.ErrGatewayRefused) || !errors.As(err, &ge) || ge.Code != 0x8A || ge.Disconnect {
		t.Fatalf("link error %v, want ErrGatewayRefused with CONNACK 0x8A (banned)", err)
	}
}

// linkGoroutines counts goroutines running the link's or paho's code.
func linkGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n, first := 0, ""
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "eclipse/paho.golang") || strings.Contains(g, "muster/agent.(*Link)") {
			if n++; first == "" {
				first = g
			}
		}
	}
	return n, first
}

// TestAgentLinkCloseStopsEverything: Close and the end of ctx stop the link
// and leave none of its goroutines, connected or between attempts.
func TestAgentLinkCloseStopsEverything(t *testing.T) {
	n := startE2ENode(t)
	ctx := context.Background()
	a := n.provisionedAgent(t, "SN-25")
	id := a.Credentials().DeviceID

	l := n.keepLink(t, a, func(c *agent.LinkConfig) { c.Commands = true })
	waitUntil(t, "first connection", func() bool { return l.Status().Connected })
	if c, _ := linkGoroutines(); c == 0 {
		t.Fatal("no link goroutines seen while connected: the check below would prove nothing")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done is open after Close returned")
	}
	if err := l.Err(); !errors.Is(err, agent.ErrLinkClosed) {
		t.Fatalf("Err after Close: %v, want ErrLinkClosed", err)
	}
	if err := l.Publish(ctx, "devices/"+id+"/telemetry", nil); !errors.Is(err, agent.ErrDisconnected) {
		t.Fatalf("publish after Close: %v, want ErrDisconnected", err)
	}
	if err := l.Subscribe(ctx, agent.CommandTopics(id)); err == nil {
		t.Fatal("subscribe after Close succeeded")
	}
	_ = l.Close() // twice is harmless

	// Ended by its context while waiting to retry: the gateway is given
	// an address nothing listens on.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close()
	cctx, cancel := context.WithCancel(ctx)
	l2, err := a.KeepMQTT(cctx, agent.LinkConfig{MQTTConfig: agent.MQTTConfig{Addr: addr, ServerName: "localhost"}, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a failed attempt", func() bool { return l2.Status().LastError != nil })
	cancel()
	select {
	case <-l2.Done():
	case <-time.After(linkDeadline):
		t.Fatal("the link did not stop with its context")
	}
	if err := l2.Err(); !errors.Is(err, agent.ErrLinkClosed) {
		t.Fatalf("Err after the context ended: %v", err)
	}

	// paho reports a lost connection on goroutines of its own that end
	// at once; wait for them rather than for a time.
	waitUntil(t, "no link goroutines left", func() bool { c, _ := linkGoroutines(); return c == 0 })
	waitUntil(t, "the gateway sees the device gone", func() bool {
		m, err := n.admin.DeviceMetrics(ctx, id, time.Now().Add(-time.Hour), time.Now())
		return err == nil && m.Presence != nil && !m.Presence.Connected
	})
}

// TestAgentLinkFollowsRedirect: two regions on one database; the device's
// home is eu, and a link pointed at the us gateway is sent home by its
// CONNACK 0x9C and stays connected there.
func TestAgentLinkFollowsRedirect(t *testing.T) {
	url := sharedDatabase(t)
	eu := startRegionNode(t, url, "eu")
	minted := mintFleet(t, eu.admin, 1)
	us := startRegionNode(t, url, "us")
	ctx := context.Background()
	birth, err := tls.X509KeyPair([]byte(minted[0].CertificatePEM), []byte(minted[0].KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Server: "https://" + eu.srv.DeviceAddr(), Roots: eu.roots, Birth: birth})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	home := "eu"
	if _, err := eu.admin.UpdateDevice(ctx, c.DeviceID, client.DevicePatch{Attributes: map[string]*string{region.AttrHome: &home}}, 0); err != nil {
		t.Fatal(err)
	}
	l := us.keepLink(t, a, func(c *agent.LinkConfig) { c.Commands = true })
	waitUntil(t, "connection at home", func() bool {
		s := l.Status()
		return s.Connected && s.Addr == eu.srv.gw.Addr()
	})
	var ge *agent.GatewayError
	if err := l.Status().LastError; !errors.As(err, &ge) || ge.Code != 0x9C || ge.ServerReference != "mqtts://"+eu.srv.gw.Addr() {
		t.Fatalf("last error %v, want us's CONNACK 0x9C naming eu", err)
	}
	if s := l.Status(); s.Reconnects != 0 || s.Attempts != 2 {
		t.Fatalf("status %+v: want the refused attempt at us, then one session at eu", s)
	}
	l.receive(t, eu.sendReboot(t, c.DeviceID, "home"))
}
