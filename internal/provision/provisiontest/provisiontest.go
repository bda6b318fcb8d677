// Package provisiontest runs a provisioning node on loopback for tests:
// a real store, the revocationtest CA hierarchy, a device listener with
// mTLS and revocation, and the pipeline with its JSON routes.
package provisiontest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
	"github.com/muster-iot/muster/internal/server"
	"github.com/muster-iot/muster/internal/store"
)

// Issuer issues from the test hierarchy's operational CA.
type Issuer struct{ PKI *revocationtest.PKI }

// Operational implements provision.Issuer; every region gets the test
// hierarchy's operational CA.
func (i Issuer) Operational(ctx context.Context, _ string) (*provision.SigningCA, error) {
	chain, _ := i.Chain(ctx, revocationtest.OperationalID)
	return &provision.SigningCA{ID: revocationtest.OperationalID, CA: i.PKI.Operational, Chain: chain}, nil
}

// Chain implements provision.Issuer.
func (i Issuer) Chain(context.Context, string) ([]*x509.Certificate, error) {
	return []*x509.Certificate{i.PKI.Operational.Certificate(), i.PKI.Root.Certificate()}, nil
}

// Node is a provisioning node on loopback: a real store, a real device
// listener with mTLS and revocation, and the pipeline behind it.
type Node struct {
	Store    *store.Store
	PKI      *revocationtest.PKI
	Rev      *revocation.Service
	Listener *server.DeviceListener
	Pipeline *provision.Pipeline
}

// Option changes the pipeline configuration before the node starts.
type Option func(*provision.Config)

// Start runs a node until the test ends. Options change its pipeline.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	st := revocationtest.OpenStore(t, revocationtest.StoreURL(t))
	p := revocationtest.NewPKI(t, "f1")
	ctx, cancel := context.WithCancel(context.Background())
	rev, err := revocation.New(revocation.Config{Store: st, Issuers: p})
	if err != nil {
		t.Fatal(err)
	}
	revDone := make(chan error, 1)
	go func() { revDone <- rev.Run(ctx) }()
	cfg := provision.Config{Store: st, Issuer: Issuer{PKI: p}, Region: "eu-test", PendingRetryAfter: 2 * time.Second,
		Endpoints: provision.Endpoints{MQTT: "mqtts://127.0.0.1:8883"}, TemplateTTL: time.Nanosecond}
	for _, o := range opts {
		o(&cfg)
	}
	pipe, err := provision.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.NewDeviceListener(ctx, server.DeviceListenerConfig{
		Addr: "127.0.0.1:0", Trust: p, Revocation: rev, ServerCertificate: p.ServerCertificate, Devices: rev,
		PKI: revocation.PKIHandler(rev),
	})
	if err != nil {
		t.Fatal(err)
	}
	provision.RegisterJSON(ln, pipe)
	lnDone := make(chan error, 1)
	go func() { lnDone <- ln.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-lnDone
		<-revDone
	})
	for start := time.Now(); rev.Ready() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 3*time.Second {
			t.Fatal("revocation service did not load")
		}
	}
	return &Node{Store: st, PKI: p, Rev: rev, Listener: ln, Pipeline: pipe}
}

// PutTemplate stores a template (validated as the API does).
func (n *Node) PutTemplate(t testing.TB, tmpl provision.Template) {
	t.Helper()
	if err := tmpl.Validate(); err != nil {
		t.Fatalf("template %s: %v", tmpl.Name, err)
	}
	doc, _ := json.Marshal(tmpl)
	_, err := n.Store.PutTemplate(context.Background(), tmpl.Name, doc, true, "test/setup")
	if err != nil {
		_, err = n.Store.PutTemplate(context.Background(), tmpl.Name, doc, false, "test/setup")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Device is a manufactured device with its birth credential.
type Device struct {
	*fleet.Device
	Birth revocationtest.Credential
}

// Manufacture registers a device with a birth certificate.
func (n *Node) Manufacture(t testing.TB) Device {
	t.Helper()
	d := n.PKI.Device(t, n.Store)
	return Device{Device: d, Birth: n.PKI.BirthCredential(t, n.Store, d)}
}

// Client makes new mTLS connections as cred (nil: no client certificate).
func (n *Node) Client(cred *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(n.PKI.Root.Certificate())
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if cred != nil {
		cfg.Certificates = []tls.Certificate{*cred}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// URL is the device listener URL of path.
func (n *Node) URL(path string) string { return "https://" + n.Listener.Addr() + path }

// Answer is one HTTP answer.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (a Answer) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		t.Fatalf("decode %q: %v", a.Body, err)
	}
}

// Do sends one request and reads the whole answer.
func Do(t testing.TB, c *http.Client, method, url, contentType string, body []byte) Answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// ProvisionJSON POSTs a JSON provisioning request as cred.
func (n *Node) ProvisionJSON(t testing.TB, cred tls.Certificate, path string, csr []byte, extra map[string]any) Answer {
	t.Helper()
	body := map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))}
	for k, v := range extra {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	return Do(t, n.Client(&cred), "POST", n.URL(path), "application/json", b)
}

// NewKey makes an ECDSA P-256 key.
func NewKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// MakeCSR signs a CSR for key; tmpl nil gives one with a made-up subject.
func MakeCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whatever-the-device-says"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Issued decodes a successful provisioning answer and checks its chain.
func (n *Node) Issued(t testing.TB, a Answer) (*provision.Response, *x509.Certificate) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("provisioning answered %d %s", a.Status, a.Body)
	}
	var resp provision.Response
	a.JSON(t, &resp)
	block, _ := pem.Decode([]byte(resp.Certificate))
	if block == nil {
		t.Fatalf("no certificate in %s", a.Body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	roots := x509.NewCertPool()
	roots.AddCert(n.PKI.Root.Certificate())
	rest := []byte(resp.CAChain)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, _ := x509.ParseCertificate(b.Bytes)
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not chain to the root through the answer's chain: %v", err)
	}
	return &resp, cert
}

// TLSCred is a TLS client certificate from a certificate and key.
func TLSCred(cert *x509.Certificate, key crypto.Signer, chain ...*x509.Certificate) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// Events returns a device's history events, in order.
func (n *Node) Events(t testing.TB, id string) []fleet.Event {
	t.Helper()
	evs, err := n.Store.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// HasEvent reports whether an event of type typ has data containing contains.
func HasEvent(evs []fleet.Event, typ, contains string) bool {
	for _, e := range evs {
		if e.Type == typ && strings.Contains(string(e.Data), contains) {
			return true
		}
	}
	return false
}

// BasicTemplate serves factory f1 model m1 with two parameters and a device configuration using them.
func BasicTemplate(name string) provision.Template {
	return provision.Template{
		Name: name, Factories: []string{"f1"}, Models: []string{"m1"},
		Parameters: []provision.Parameter{
			{Name: "site", Type: provision.ParamString, Default: "depot"},
			{Name: "tier", Type: provision.ParamEnum, Values: []string{"basic", "pro"}, Default: "basic"},
		},
		Device: provision.DeviceConfig{
			Attributes:    map[string]string{"site": "{{param.site}}", "tier": "{{param.tier}}"},
			Groups:        []string{"fleet-{{param.tier}}"},
			Topics:        provision.TopicPolicy{Publish: []string{"devices/{{device.id}}/telemetry"}, Subscribe: []string{"devices/{{device.id}}/commands"}},
			Configuration: map[string]string{"serial": "{{device.serial}}"},
		},
	}
}
