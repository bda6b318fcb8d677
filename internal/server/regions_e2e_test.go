package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// regionNode is one region's node in a three-region deployment.
type regionNode struct {
	*testNode
	name string
}

// sharedDatabase is one database for every node of a test: a fresh
// PostgreSQL schema when MUSTER_TEST_DATABASE_URL is set, else one SQLite
// file the nodes open together.
func sharedDatabase(t *testing.T) string {
	t.Helper()
	if url := pgtest.URL(t); url != "" {
		return url
	}
	t.Log(pgtest.Env + " not set: the nodes share one SQLite file")
	return "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
}

// startRegionNode runs a node serving region name on the database url.
func startRegionNode(t *testing.T, url, name string) *regionNode {
	t.Helper()
	n := runNode(t, Config{DatabaseURL: url, NodeID: "node-" + name, Region: name, CAPassphrase: []byte("regions test passphrase")})
	return &regionNode{testNode: n, name: name}
}

// latencyProxies puts a toxiproxy proxy with a latency toxic in front of
// each node's device listener and points the region's probe URL at it.
type latencyProxies struct {
	api     *toxiproxy.ApiServer
	proxies map[string]*toxiproxy.Proxy
}

func newLatencyProxies(t *testing.T, admin *client.Client, nodes []*regionNode, latencyMs []int) *latencyProxies {
	t.Helper()
	lp := &latencyProxies{
		api:     toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
	}
	for i, n := range nodes {
		p := toxiproxy.NewProxy(lp.api, n.name, "127.0.0.1:0", n.srv.DeviceAddr())
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		toxic := fmt.Sprintf(`{"name":"latency","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, latencyMs[i])
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			t.Fatal(err)
		}
		lp.proxies[n.name] = p
		probe := "https://" + p.Listen + ProbePath
		if _, err := admin.UpdateRegion(context.Background(), n.name, client.RegionPatch{ProbeURL: &probe}); err != nil {
			t.Fatalf("point %s's probe at its proxy: %v", n.name, err)
		}
	}
	// Nodes reread the regions at most once per cache period: after it,
	// every node's bootstrap document names the proxies.
	time.Sleep(region.DefaultCacheTTL + 100*time.Millisecond)
	return lp
}

// set changes a region's latency.
func (lp *latencyProxies) set(t *testing.T, name string, ms int) {
	t.Helper()
	if _, err := lp.proxies[name].Toxics.UpdateToxicJson("latency", strings.NewReader(fmt.Sprintf(`{"attributes":{"latency":%d}}`, ms))); err != nil {
		t.Fatal(err)
	}
}

// mintFleet registers factory f1 with the default template (no region
// section: lowest-latency) and mints count devices.
func mintFleet(t *testing.T, admin *client.Client, count int) []client.BatchResult {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CreateFactory(ctx, client.FactoryRequest{Name: "f1", Models: []string{"m1"}, SerialPattern: "SN-[0-9]+"}); err != nil {
		t.Fatal(err)
	}
	tmpl := `{"name":"` + provision.DefaultTemplate + `","factories":["f1"],"models":["m1"],
		"device":{"topics":{"publish":["devices/{{device.id}}/telemetry"],"subscribe":["devices/{{device.id}}/commands/#"]}}}`
	if _, err := admin.CreateTemplate(ctx, json.RawMessage(tmpl)); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("serial,model\n")
	for i := range count {
		fmt.Fprintf(&csv, "SN-%04d,m1\n", i)
	}
	var out []client.BatchResult
	if _, err := admin.SubmitBatch(ctx, "f1", strings.NewReader(csv.String()),
		client.BatchOptions{Format: client.FormatCSV, KeyMode: client.KeyModeMint}, func(r client.BatchResult) error {
			out = append(out, r)
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if r.Status != "ok" {
			t.Fatalf("mint: %+v", r)
		}
	}
	return out
}

// TestRegionsLowestLatencyEndToEnd runs three regions as three nodes on
// one database, with toxiproxy adding 10, 40 and 120 ms in front of their
// probes. Devices provisioning through the 40 ms region's node measure
// every probe, land in the 10 ms region and are told so; the gateway of
// the wrong region redirects them (MQTT 5) or refuses them (MQTT 3.1.1);
// when the latencies change, reports re-home a device after the
// hysteresis; draining a region moves its devices to the next best.
func TestRegionsLowestLatencyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes and real latency: skipped with -short")
	}
	url := sharedDatabase(t)
	// The factory exists before the other nodes start: on SQLite a node
	// learns of CAs made elsewhere only at its next registry reread (30 s;
	// PostgreSQL tells it at once), and devices probe every region with
	// their birth certificates.
	eu := startRegionNode(t, url, "eu")
	minted := mintFleet(t, eu.admin, 3)
	us := startRegionNode(t, url, "us")
	ap := startRegionNode(t, url, "ap")
	nodes := []*regionNode{eu, us, ap}
	ctx := context.Background()

	regions, err := us.admin.ListRegions(ctx)
	if err != nil || len(regions) != 3 {
		t.Fatalf("each node registers its region: %+v, %v", regions, err)
	}
	lp := newLatencyProxies(t, us.admin, nodes, []int{10, 40, 120})

	// Provision every device through the us node, the 40 ms one.
	var agents []*agent.Agent
	for _, m := range minted {
		birth, err := tls.X509KeyPair([]byte(m.CertificatePEM), []byte(m.KeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		ag, err := agent.New(agent.Config{Server: "https://" + us.srv.DeviceAddr(), Roots: us.roots, Birth: birth,
			Regions: true, ProbeSamples: 3, Dir: filepath.Join(t.TempDir(), m.Serial)})
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := ag.Provision(pctx)
		cancel()
		if err != nil {
			t.Fatalf("provision %s: %v", m.Serial, err)
		}
		info := c.Info
		if info.Region != "eu" || info.ServedBy != "us" || info.Redirect == nil || info.Redirect.Region != "eu" ||
			info.Redirect.Reason != provision.RedirectAllocatedElsewhere || info.Endpoints["mqtt"] != "mqtts://"+eu.srv.gw.Addr() {
			t.Fatalf("%s: answer region %q served by %q, redirect %+v, endpoints %v; want eu, redirected from us", m.Serial, info.Region, info.ServedBy, info.Redirect, info.Endpoints)
		}
		agents = append(agents, ag)
	}

	// The device record and its history say where and why.
	dev, err := eu.admin.GetDevice(ctx, agents[0].Credentials().DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Attributes[region.AttrHome] != "eu" || dev.Attributes[region.AttrPolicy] != region.PolicyLowestLatency {
		t.Fatalf("device attributes = %v", dev.Attributes)
	}
	var medians map[string]float64
	if err := json.Unmarshal([]byte(dev.Attributes[region.AttrMeasurements]), &medians); err != nil {
		t.Fatalf("stored measurements %q: %v", dev.Attributes[region.AttrMeasurements], err)
	}
	if !(medians["eu"] < medians["us"] && medians["us"] < medians["ap"]) || medians["eu"] < 10 {
		t.Fatalf("measured medians %v do not follow 10 < 40 < 120 ms", medians)
	}
	t.Logf("measured medians (ms): %v", medians)
	ev := lastEvent(t, eu.admin, dev.ID, provision.EventProvisioned)
	var data struct {
		Region     string           `json:"region"`
		Allocation *region.Decision `json:"allocation"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.Region != "eu" || data.Allocation == nil ||
		data.Allocation.Policy != region.PolicyLowestLatency || len(data.Allocation.MedianMs) != 3 {
		t.Fatalf("provisioned event data = %s (%v)", ev.Data, err)
	}

	// The us gateway sends an MQTT 5 client to eu, and refuses 3.1.1.
	cert := agents[0].Credentials().TLSCertificate()
	ca, err := mqtt5Connect(us.srv.gw.Addr(), us, cert, dev.ID)
	if err == nil || ca == nil || ca.ReasonCode != 0x9C || ca.Properties == nil || ca.Properties.ServerReference != "mqtts://"+eu.srv.gw.Addr() {
		t.Fatalf("MQTT 5 on the wrong region: connack %+v, %v; want 0x9C with eu's server reference", ca, err)
	}
	if code := mqtt3Connect(t, us.srv.gw.Addr(), us, cert, dev.ID); code != 3 {
		t.Fatalf("MQTT 3.1.1 on the wrong region: return code %d, want 3 (server unavailable)", code)
	}
	if ca, err := mqtt5Connect(eu.srv.gw.Addr(), eu, cert, dev.ID); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("MQTT 5 at home: %+v, %v", ca, err)
	}

	// The latencies change: ap becomes the fastest. The first reports
	// build a streak; the third moves the device.
	lp.set(t, "eu", 120)
	lp.set(t, "ap", 10)
	mover := agents[0]
	for i := 1; i <= region.DefaultHysteresis.Reports; i++ {
		rep, err := mover.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := i == region.DefaultHysteresis.Reports
		if rep.Moved != last || (last && rep.Region != "ap") || (!last && (rep.Region != "eu" || rep.Better != "ap" || rep.Streak != i)) {
			t.Fatalf("report %d: %+v", i, rep)
		}
	}
	if h := mover.Home(); h.Region != "ap" || h.MQTTURL != "mqtts://"+ap.srv.gw.Addr() {
		t.Fatalf("agent home after re-homing = %+v", h)
	}
	ev = lastEvent(t, ap.admin, dev.ID, region.EventRehomed)
	if !strings.Contains(string(ev.Data), `"cause":"report"`) || !strings.Contains(string(ev.Data), `"from":"eu"`) {
		t.Fatalf("rehomed event = %s", ev.Data)
	}
	// The agent now talks to its home's listener; another report
	// changes nothing.
	if rep, err := mover.Report(ctx); err != nil || rep.Moved || rep.Region != "ap" {
		t.Fatalf("report at home: %+v, %v", rep, err)
	}

	// Draining eu moves the two devices still there to us (their
	// provisioning measurements put us second), in batches of one.
	var moved int
	for {
		res, err := eu.admin.DrainRegion(ctx, "eu", 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Moved {
			if m.To != "us" {
				t.Fatalf("drain moved %s to %s, want us", m.DeviceID, m.To)
			}
		}
		moved += len(res.Moved)
		if res.Remaining == 0 {
			break
		}
	}
	if moved != 2 {
		t.Fatalf("drain moved %d devices, want 2", moved)
	}
	g, err := eu.admin.GetRegion(ctx, "eu")
	if err != nil || g.Status != client.RegionDraining || g.Devices != 0 {
		t.Fatalf("eu after the drain: %+v, %v", g, err)
	}
	// A drained device learns its home from its next report.
	rep, err := agents[1].Report(ctx)
	if err != nil || rep.Region != "us" || agents[1].Home().Region != "us" {
		t.Fatalf("report after the drain: %+v, %v", rep, err)
	}
	// The bootstrap document lists only enabled regions, once the nodes
	// have reread the regions.
	time.Sleep(region.DefaultCacheTTL + 100*time.Millisecond)
	doc, err := agents[1].Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range doc.Regions {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "ap,us" {
		t.Fatalf("bootstrap regions after draining eu: %v", names)
	}
}

// lastEvent is the newest event of type typ in a device's history.
func lastEvent(t *testing.T, admin *client.Client, id, typ string) fleet.Event {
	t.Helper()
	events, err := admin.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type == typ {
			return events[i]
		}
	}
	t.Fatalf("device %s has no %s event", id, typ)
	return fleet.Event{}
}

// mqtt5Connect connects with MQTT 5 and returns the CONNACK.
func mqtt5Connect(addr string, n *regionNode, cert tls.Certificate, id string) (*paho.Connack, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: n.roots, ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	return ca, err
}

// mqtt3Connect connects with MQTT 3.1.1 and returns the CONNACK return code.
func mqtt3Connect(t *testing.T, addr string, n *regionNode, cert tls.Certificate, id string) byte {
	t.Helper()
	opts := mqtt3.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(id).SetProtocolVersion(4).
		SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: n.roots, ServerName: "localhost"}).
		SetConnectRetry(false).SetAutoReconnect(false).SetConnectTimeout(15 * time.Second)
	c := mqtt3.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(15 * time.Second)
	defer c.Disconnect(0)
	ct, ok := tok.(*mqtt3.ConnectToken)
	if !ok {
		t.Fatal("not a connect token")
	}
	var ne net.Error
	if errors.As(tok.Error(), &ne) {
		t.Fatalf("MQTT 3.1.1: %v", tok.Error())
	}
	return ct.ReturnCode()
}
