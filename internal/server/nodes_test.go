package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// startNode runs a node on the database url with its own data directory
// and the given CA passphrase.
func startNode(t *testing.T, url, name, passphrase string) *testNode {
	t.Helper()
	return runNode(t, Config{DatabaseURL: url, NodeID: name, CAPassphrase: []byte(passphrase)})
}

// twoNodes starts nodes A and B on one fresh PostgreSQL schema, each with
// its own data directory, sharing only the database and the passphrase.
func twoNodes(t *testing.T) (a, b *testNode) {
	t.Helper()
	url := pgtest.URL(t)
	if url == "" {
		t.Skip(pgtest.Env + " not set")
	}
	a = startNode(t, url, "node-a", "shared passphrase")
	b = startNode(t, url, "node-b", "shared passphrase")
	return a, b
}

// TestTwoNodesShareEverythingThroughPostgreSQL: a second node started with
// an empty data directory on the same database serves the same CA
// hierarchy, accepts the first node's tokens, reads its devices, and signs
// with a CA whose key the first node generated after the second started.
func TestTwoNodesShareEverythingThroughPostgreSQL(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()

	caA, _ := os.ReadFile(filepath.Join(a.dir, "ca.pem"))
	caB, _ := os.ReadFile(filepath.Join(b.dir, "ca.pem"))
	if !bytes.Equal(caA, caB) {
		t.Fatal("the nodes wrote different root CAs to ca.pem: the second node forked the hierarchy")
	}

	// A token made on A works on B.
	tok, err := a.admin.CreateToken(ctx, client.TokenRequest{Name: "ops", Role: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.clientAs(t, tok.Secret).Whoami(ctx); err != nil {
		t.Fatalf("a token created on node A is refused by node B: %v", err)
	}

	// A factory registered on A gets a manufacturing CA whose key only A
	// generated; B mints birth certificates with it.
	if _, err := a.admin.CreateFactory(ctx, client.FactoryRequest{Name: "f1", Models: []string{"m1"}, SerialPattern: "SN-[0-9]+"}); err != nil {
		t.Fatal(err)
	}
	var minted client.BatchResult
	if _, err := b.admin.SubmitBatch(ctx, "f1", strings.NewReader("serial,model\nSN-1,m1\n"),
		client.BatchOptions{Format: client.FormatCSV, KeyMode: client.KeyModeMint}, func(r client.BatchResult) error {
			minted = r
			return nil
		}); err != nil {
		t.Fatalf("node B mints with node A's factory CA: %v", err)
	}
	if minted.Status != "ok" || minted.CertificatePEM == "" {
		t.Fatalf("node B did not mint: %+v", minted)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "keys")); err != nil {
		t.Fatalf("node B keeps no key files: %v", err)
	}

	// The device B registered reads the same from A.
	got, err := a.admin.GetDevice(ctx, minted.DeviceID)
	if err != nil {
		t.Fatalf("node A reads the device node B created: %v", err)
	}
	if got.Identity.Serial != "SN-1" {
		t.Fatalf("node A reads serial %q, want SN-1", got.Identity.Serial)
	}
}

// TestNodeWithAnotherPassphraseRefusesToStart: the database holds CA keys
// encrypted with the first node's passphrase; a node given another one
// must stop with a message that says so, not create CAs of its own.
func TestNodeWithAnotherPassphraseRefusesToStart(t *testing.T) {
	url := pgtest.URL(t)
	if url == "" {
		t.Skip(pgtest.Env + " not set")
	}
	startNode(t, url, "node-a", "shared passphrase")
	_, err := New(context.Background(), Config{
		DataDir: t.TempDir(), DatabaseURL: url, NodeID: "node-c",
		APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		CAPassphrase: []byte("another passphrase"), Logger: slog.New(slog.DiscardHandler),
	})
	if err == nil {
		t.Fatal("a node with another CA passphrase started")
	}
	if !strings.Contains(err.Error(), "same one") {
		t.Fatalf("error %q does not tell the user to give every node the same passphrase", err)
	}
}

// provisionOn provisions a freshly minted device through node n's device
// listener and returns its agent, holding operational credentials.
func provisionOn(t *testing.T, n *testNode, minted client.BatchResult) *agent.Agent {
	t.Helper()
	birth, err := tls.X509KeyPair([]byte(minted.CertificatePEM), []byte(minted.KeyPEM))
	if err != nil {
		t.Fatalf("minted birth credential: %v", err)
	}
	ag, err := agent.New(agent.Config{Server: "https://" + n.srv.DeviceAddr(), Roots: n.roots, Birth: birth})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ag.Provision(ctx); err != nil {
		t.Fatalf("provision on %s: %v", n.srv.cfg.NodeID, err)
	}
	return ag
}

// within polls cond until it holds. Issue 6 wants a change on one node to
// reach every other within a second; that is measured (the time is logged,
// and BENCHMARKS.md row 13 records it), not asserted, because a loaded test
// machine would make it flaky. The deadline is ten seconds: still well
// below the periodic rereads (30 s) that would mask a broken notification
// path.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		if cond() {
			t.Logf("%s: after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectMQTT opens the device's MQTT session on node n's gateway.
func connectMQTT(t *testing.T, ag *agent.Agent, n *testNode) *agent.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := ag.ConnectMQTT(ctx, agent.MQTTConfig{Addr: n.srv.gw.Addr(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("MQTT session on %s: %v", n.srv.cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	return sess
}

// ended reports whether a session is over.
func ended(s *agent.Session) func() bool {
	return func() bool {
		select {
		case <-s.Done():
			return true
		default:
			return false
		}
	}
}

// deviceListenerRefuses reports whether n's device listener refuses a new
// mTLS connection with cert.
func deviceListenerRefuses(n *testNode, cert tls.Certificate) bool {
	conn, err := tls.Dial("tcp", n.srv.DeviceAddr(), &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: n.roots, ServerName: "localhost",
	})
	if err != nil {
		return true
	}
	defer conn.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestChangesOnOneNodeReachTheOther: a certificate revoked through node A's
// API is refused by node B's device listener and cuts off the device's
// MQTT session on node B; a device suspended through node A loses its
// session on node B; each logged with the time it took (issue 6 wants
// under a second; see within).
func TestChangesOnOneNodeReachTheOther(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	minted := mintFleet(t, a.admin, 2)

	// Revocation.
	revoked := provisionOn(t, a, minted[0])
	cert := revoked.Credentials().TLSCertificate()
	if deviceListenerRefuses(b, cert) {
		t.Fatal("node B refuses a valid operational certificate")
	}
	sess := connectMQTT(t, revoked, b)
	if _, err := a.admin.RevokeDeviceCertificates(ctx, minted[0].DeviceID, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	within(t, "node B's gateway drops the revoked device", ended(sess))
	within(t, "node B's device listener refuses the revoked certificate", func() bool { return deviceListenerRefuses(b, cert) })

	// Suspension.
	suspended := provisionOn(t, a, minted[1])
	sess = connectMQTT(t, suspended, b)
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		d, err := a.admin.GetDevice(ctx, minted[1].DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Lifecycle.State == "active" {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the device did not become active on connecting (state %s)", d.Lifecycle.State)
		}
	}
	if _, err := a.admin.SetState(ctx, minted[1].DeviceID, "suspended", "test"); err != nil {
		t.Fatal(err)
	}
	within(t, "node B's gateway drops the suspended device", ended(sess))
}

// heardOn returns a channel that receives the payloads of notices node n
// hears on channel. The node's own caches subscribed first, so when a
// payload arrives here they have acted on it already.
func heardOn(n *testNode, channel string) <-chan string {
	got := make(chan string, 64)
	n.srv.hub.Subscribe(channel, func(p string) {
		select {
		case got <- p:
		default:
		}
	})
	return got
}

// await waits for a notice whose payload satisfies ok, up to ten seconds
// (see within).
func await(t *testing.T, what string, got <-chan string, ok func(string) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			if ok(p) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no notice within 10 s", what)
		}
	}
}

// TestTemplatesAndCAsReachTheOther: node B trusts the manufacturing CA of
// a factory node A registered after B started, and, with its template and
// operational CA cached (for 2 s and 30 s), provisions with the template
// edited and the CA rotated through node A as soon as it hears of them.
// Without the notices B would refuse the birth certificates for up to 30 s.
func TestTemplatesAndCAsReachTheOther(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	minted := mintFleet(t, a.admin, 2)
	provisionOn(t, b, minted[0]) // B caches both now

	templates, cas := heardOn(b, notify.Templates), heardOn(b, notify.CAs)
	tmpl := `{"name":"` + provision.DefaultTemplate + `","factories":["f1"],"models":["m1"],
		"device":{"attributes":{"site":"edited-on-a"},"topics":{"publish":["devices/{{device.id}}/telemetry"]}}}`
	if _, err := a.admin.UpdateTemplate(ctx, provision.DefaultTemplate, json.RawMessage(tmpl)); err != nil {
		t.Fatal(err)
	}
	rotated, err := a.admin.RotateCA(ctx, client.RotateRequest{Purpose: "operational", Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	await(t, "node B hears of the template", templates, func(p string) bool { return p == provision.DefaultTemplate || p == notify.All })
	await(t, "node B hears of the CA rotation", cas, func(string) bool { return true })

	ag := provisionOn(t, b, minted[1])
	creds := ag.Credentials()
	if got := hex.EncodeToString(creds.Certificate.AuthorityKeyId); got != rotated.SubjectKeyID {
		t.Errorf("node B issued from CA key %s, want the CA node A rotated to (%s)", got, rotated.SubjectKeyID)
	}
	d, err := a.admin.GetDevice(ctx, creds.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Attributes["site"] != "edited-on-a" {
		t.Errorf("node B provisioned with attributes %v, want the template edited on node A", d.Attributes)
	}
}
