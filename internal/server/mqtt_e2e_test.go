package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/provision"
)

// lockedConn serialises writes: paho.golang may write from several
// goroutines at once.
type lockedConn struct {
	net.Conn
	mu sync.Mutex
}

func (c *lockedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// mqttSession connects to the node's gateway as cert with clientID and
// delivers every publish it receives on the returned channel.
func mqttSession(t *testing.T, addr string, roots *x509.CertPool, cert tls.Certificate, clientID string) (*paho.Client, <-chan *paho.Publish) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"})
	if err == nil {
		err = conn.Handshake()
	}
	if err != nil {
		t.Fatalf("TLS to the gateway as %s: %v", clientID, err)
	}
	got := make(chan *paho.Publish, 8)
	c := paho.NewClient(paho.ClientConfig{
		Conn: &lockedConn{Conn: conn},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("MQTT CONNECT as %s: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, got
}

// TestMQTTProvisioningEndToEnd runs a whole node: a factory and a minted
// batch through the admin API, then a device that holds only its birth
// certificate provisions over MQTT, reconnects with its operational
// certificate and reaches its own topics, and only those.
func TestMQTTProvisioningEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, Config{
		DataDir: dir, APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		CAPassphrase: []byte("test passphrase"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	admin, err := client.New("https://"+srv.APIAddr(), client.WithToken(strings.TrimSpace(string(token))), client.WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateFactory(ctx, client.FactoryRequest{Name: "f1", Models: []string{"m1"}, SerialPattern: "SN-[0-9]+"}); err != nil {
		t.Fatal(err)
	}
	tmpl := `{"name":"` + provision.DefaultTemplate + `","factories":["f1"],"models":["m1"],
		"device":{"topics":{"publish":["devices/{{device.id}}/telemetry"],"subscribe":["devices/{{device.id}}/commands"]}}}`
	if _, err := admin.CreateTemplate(ctx, json.RawMessage(tmpl)); err != nil {
		t.Fatal(err)
	}
	var minted client.BatchResult
	if _, err := admin.SubmitBatch(ctx, "f1", strings.NewReader("serial,model\nSN-1,m1\n"),
		client.BatchOptions{Format: client.FormatCSV, KeyMode: client.KeyModeMint}, func(r client.BatchResult) error {
			minted = r
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	birth, err := tls.X509KeyPair([]byte(minted.CertificatePEM), []byte(minted.KeyPEM))
	if err != nil {
		t.Fatalf("minted birth credential: %v (%+v)", err, minted)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	roots.AppendCertsFromPEM(caPEM)

	// With only its birth certificate, the device asks over MQTT.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	bc, answers := mqttSession(t, srv.gw.Addr(), roots, birth, "birth:f1:SN-1")
	if _, err := bc.Publish(ctx, &paho.Publish{Topic: "$muster/provision/" + provision.DefaultTemplate + "/request", QoS: 1, Payload: req}); err != nil {
		t.Fatalf("publish the provisioning request: %v", err)
	}
	var ans provision.MQTTAnswer
	select {
	case p := <-answers:
		if p.Topic != "$muster/provision/"+provision.DefaultTemplate+"/accepted" {
			t.Fatalf("answer on %s: %s", p.Topic, p.Payload)
		}
		if err := json.Unmarshal(p.Payload, &ans); err != nil || ans.Response == nil {
			t.Fatalf("accepted answer %s: %v", p.Payload, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no provisioning answer within 10 s")
	}

	// It reconnects with the operational certificate it got.
	block, _ := pem.Decode([]byte(ans.Certificate))
	keyDER, _ := x509.MarshalECPrivateKey(key)
	op, err := tls.X509KeyPair(append(pem.EncodeToMemory(block), []byte(ans.CAChain)...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := mqttSession(t, srv.gw.Addr(), roots, op, ans.DeviceID)
	sub, err := oc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "devices/" + ans.DeviceID + "/commands", QoS: 1},
		{Topic: "devices/+/commands", QoS: 1},
	}})
	// paho reports the refused subscription as an error next to the SUBACK.
	if sub == nil {
		t.Fatalf("no SUBACK: %v", err)
	}
	if len(sub.Reasons) != 2 || sub.Reasons[0] >= 0x80 || sub.Reasons[1] < 0x80 {
		t.Fatalf("SUBACK reasons %v: want its own topic granted and the wildcard over other devices refused", sub.Reasons)
	}
}
