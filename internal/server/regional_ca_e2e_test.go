package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/region"
)

// regionalCA returns the active CA of a region as the API lists it.
func regionalCA(t *testing.T, admin *client.Client, name string) *x509.Certificate {
	t.Helper()
	cas, err := admin.ListCAs(context.Background(), client.CAFilter{Purpose: string(ca.PurposeRegional), Factory: name, Status: "active"})
	if err != nil || len(cas) != 1 {
		t.Fatalf("regional CAs of %s: %+v, %v", name, cas, err)
	}
	cert, err := ca.ParseCertificatePEM([]byte(cas[0].CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// issuedBy checks that the agent's certificate was issued by want, that
// the answer's chain is want then the root, and that it verifies against
// the root with the client-auth usage.
func issuedBy(t *testing.T, what string, c *agent.Credentials, want *x509.Certificate, roots *x509.CertPool) {
	t.Helper()
	if !bytes.Equal(c.Certificate.AuthorityKeyId, want.SubjectKeyId) {
		t.Fatalf("%s: certificate issued by %q, want %q", what, c.Certificate.Issuer.CommonName, want.Subject.CommonName)
	}
	if len(c.Chain) != 2 || !c.Chain[0].Equal(want) || c.Chain[1].Subject.CommonName != "Muster Root CA" {
		t.Fatalf("%s: caChain has %d certificates, first %q; want the issuing CA, then the root", what, len(c.Chain), c.Chain[0].Subject.CommonName)
	}
	inter := x509.NewCertPool()
	inter.AddCert(c.Chain[0])
	if _, err := c.Certificate.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("%s: certificate does not verify against the root: %v", what, err)
	}
}

// subscribeRehome connects to n's gateway as the device, subscribes to its
// rehome command and returns what arrives there.
func subscribeRehome(t *testing.T, n *regionNode, cert tls.Certificate, id string) <-chan *paho.Publish {
	t.Helper()
	c, got := mqttSession(t, n.srv.gw.Addr(), n.roots, cert, id)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	topic := "devices/" + id + "/commands/" + agent.RehomeCommand
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe to the rehome command: %v", err)
	}
	return got
}

// TestRegionalCAsEndToEnd runs three regions as three nodes on one
// database: eu uses the shared operational CA, us and ap have their own.
// A device homed in us gets a certificate of us's CA (chain: us's CA, the
// root) that the gateway and the device listener accept; one homed in eu
// gets the shared CA's. Draining us sends the first device a retained
// rehome command saying renew, and the agent renews from ap's CA; a report
// tells the second device, moved from disabled eu to ap, to renew, and it
// gets ap's CA too. Bad requests for regional CAs change nothing.
func TestRegionalCAsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes: skipped with -short")
	}
	url := sharedDatabase(t)
	ctx := context.Background()
	eu := startRegionNode(t, url, "eu")
	minted := mintFleet(t, eu.admin, 2)

	// us and ap get their CAs before their nodes start: a node learns of
	// CAs made elsewhere at its next registry reread (at once with
	// PostgreSQL's notices, within 30 s on SQLite).
	for _, name := range []string{"us", "ap"} {
		g, err := eu.admin.CreateRegion(ctx, client.Region{Name: name, ProvisionURL: "https://" + name + ".invalid:9443",
			MQTTURL: "mqtts://" + name + ".invalid:8883", ProbeURL: "https://" + name + ".invalid:9443/v1/probe", Weight: 1, CA: true})
		if err != nil || g.CAID == "" {
			t.Fatalf("create %s with its CA: %+v, %v", name, g, err)
		}
	}
	usCA, apCA := regionalCA(t, eu.admin, "us"), regionalCA(t, eu.admin, "ap")
	if usCA.Subject.CommonName != "Muster Operational CA us" || bytes.Equal(usCA.SubjectKeyId, apCA.SubjectKeyId) {
		t.Fatalf("regional CAs: %q and %q", usCA.Subject.CommonName, apCA.Subject.CommonName)
	}

	// Bad requests: clear errors, nothing stored.
	before, err := eu.admin.ListCAs(ctx, client.CAFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *client.APIError
	if _, err := eu.admin.UpdateRegion(ctx, "us", client.RegionPatch{CA: true}); !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(apiErr.Message, "own operational CA already") {
		t.Errorf("--ca on a region that has one: %v", err)
	}
	if _, err := eu.admin.UpdateRegion(ctx, "nowhere", client.RegionPatch{CA: true}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("--ca on an unknown region: %v", err)
	}
	bad := -1
	if _, err := eu.admin.UpdateRegion(ctx, "eu", client.RegionPatch{CA: true, Weight: &bad}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("--ca with an invalid weight: %v", err)
	}
	if _, err := eu.admin.CreateRegion(ctx, client.Region{Name: "bad name!", ProvisionURL: "https://x.invalid", MQTTURL: "mqtts://x.invalid",
		ProbeURL: "https://x.invalid/v1/probe", CA: true}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("an invalid region with --ca: %v", err)
	}
	if after, _ := eu.admin.ListCAs(ctx, client.CAFilter{}); len(after) != len(before) {
		t.Fatalf("refused requests stored %d CAs", len(after)-len(before))
	}
	if g, err := eu.admin.GetRegion(ctx, "eu"); err != nil || g.CAID != "" || g.Weight != 1 {
		t.Fatalf("eu after the refused change: %+v, %v", g, err)
	}

	us := startRegionNode(t, url, "us")
	ap := startRegionNode(t, url, "ap")
	nodes := map[string]*regionNode{"eu": eu, "us": us, "ap": ap}
	setRegion := func(name, status string) {
		t.Helper()
		n := nodes[name]
		prov, mqtt, probe := "https://"+n.srv.DeviceAddr(), "mqtts://"+n.srv.gw.Addr(), "https://"+n.srv.DeviceAddr()+ProbePath
		if _, err := eu.admin.UpdateRegion(ctx, name, client.RegionPatch{ProvisionURL: &prov, MQTTURL: &mqtt, ProbeURL: &probe, Status: &status}); err != nil {
			t.Fatal(err)
		}
	}
	settle := func() { time.Sleep(region.DefaultCacheTTL + 100*time.Millisecond) }
	newAgent := func(m client.BatchResult, via *regionNode) *agent.Agent {
		birth, err := tls.X509KeyPair([]byte(m.CertificatePEM), []byte(m.KeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		ag, err := agent.New(agent.Config{Server: "https://" + via.srv.DeviceAddr(), Roots: via.roots, Birth: birth,
			Regions: true, ProbeSamples: 1, Dir: filepath.Join(t.TempDir(), m.Serial)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ag.Provision(ctx); err != nil {
			t.Fatalf("provision %s: %v", m.Serial, err)
		}
		return ag
	}

	// Only us is enabled: the first device is homed there, through eu's node.
	setRegion("us", client.RegionEnabled)
	setRegion("ap", client.RegionDisabled)
	setRegion("eu", client.RegionDisabled)
	settle()
	first := newAgent(minted[0], eu)
	c1 := first.Credentials()
	if c1.Info.Region != "us" {
		t.Fatalf("first device homed in %q, want us", c1.Info.Region)
	}
	issuedBy(t, "device homed in us", c1, usCA, us.roots)
	if ack, err := mqtt5Connect(us.srv.gw.Addr(), us, c1.TLSCertificate(), c1.DeviceID); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("us's gateway refuses a certificate of us's CA: %+v, %v", ack, err)
	}
	if rep, err := first.Report(ctx); err != nil || rep.Region != "us" || rep.Renew {
		t.Fatalf("report at home (the device listener accepts the certificate): %+v, %v", rep, err)
	}

	// Only eu: the second device gets the shared operational CA.
	setRegion("eu", client.RegionEnabled)
	setRegion("us", client.RegionDisabled)
	settle()
	second := newAgent(minted[1], eu)
	c2 := second.Credentials()
	shared, err := eu.admin.ListCAs(ctx, client.CAFilter{Purpose: "operational", Status: "active"})
	if err != nil || len(shared) != 1 {
		t.Fatal(shared, err)
	}
	sharedCA, _ := ca.ParseCertificatePEM([]byte(shared[0].CertPEM))
	if c2.Info.Region != "eu" {
		t.Fatalf("second device homed in %q, want eu", c2.Info.Region)
	}
	issuedBy(t, "device homed in eu", c2, sharedCA, eu.roots)

	// Drain us to ap: the rehome command says renew, and the agent does,
	// from ap's CA.
	setRegion("us", client.RegionEnabled)
	setRegion("ap", client.RegionEnabled)
	setRegion("eu", client.RegionDisabled)
	settle()
	// The device is connected to its home's gateway when us is drained
	// through us's node, which publishes the command there.
	commands := subscribeRehome(t, us, c1.TLSCertificate(), c1.DeviceID)
	res, err := us.admin.DrainRegion(ctx, "us", 10)
	if err != nil || len(res.Moved) != 1 || res.Moved[0].To != "ap" {
		t.Fatalf("drain us: %+v, %v", res, err)
	}
	var cmd *paho.Publish
	select {
	case cmd = <-commands:
	case <-time.After(15 * time.Second):
		t.Fatal("no rehome command")
	}
	if !strings.Contains(string(cmd.Payload), `"renew":true`) {
		t.Fatalf("rehome command %s does not say renew", cmd.Payload)
	}
	if _, handled, err := first.HandleCommand(ctx, cmd.Topic, cmd.Payload); !handled || err != nil {
		t.Fatalf("agent on the rehome command: handled %v, %v", handled, err)
	}
	c1b := first.Credentials()
	if first.Home().Region != "ap" || c1b.Certificate.Equal(c1.Certificate) {
		t.Fatalf("after the rehome command: home %q, certificate renewed %v", first.Home().Region, !c1b.Certificate.Equal(c1.Certificate))
	}
	issuedBy(t, "device re-homed to ap", c1b, apCA, ap.roots)
	if ack, err := mqtt5Connect(ap.srv.gw.Addr(), ap, c1b.TLSCertificate(), c1b.DeviceID); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("ap's gateway with the renewed certificate: %+v, %v", ack, err)
	}
	// The certificate of us's CA stays valid until it expires.
	if ack, err := mqtt5Connect(ap.srv.gw.Addr(), ap, c1.TLSCertificate(), c1.DeviceID); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("ap's gateway with the old certificate of us's CA: %+v, %v", ack, err)
	}
	// The command is retained: seen again, it changes nothing.
	if _, _, err := first.HandleCommand(ctx, cmd.Topic, cmd.Payload); err != nil || !first.Credentials().Certificate.Equal(c1b.Certificate) {
		t.Fatalf("the retained command again: %v; renewed again %v", err, !first.Credentials().Certificate.Equal(c1b.Certificate))
	}

	// The second device's home, eu, is disabled: its report places it in
	// ap at once and says renew (shared CA → ap's CA); the agent renews.
	rep, err := second.Report(ctx)
	if err != nil || rep.Region != "ap" || !rep.Renew {
		t.Fatalf("report from disabled eu: %+v, %v", rep, err)
	}
	issuedBy(t, "device moved from eu to ap by a report", second.Credentials(), apCA, ap.roots)
	if rep, err := second.Report(ctx); err != nil || rep.Region != "ap" || rep.Renew {
		t.Fatalf("report after the renewal: %+v, %v", rep, err)
	}
}
