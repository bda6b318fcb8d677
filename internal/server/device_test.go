package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
	"github.com/muster-iot/muster/internal/store"
)

// deviceNode is one Muster node's device side: a revocation service and a
// device listener, on a store that other nodes may share.
type deviceNode struct {
	st  *store.Store
	rev *revocation.Service
	ln  *DeviceListener
}

func startDeviceNode(t *testing.T, st *store.Store, p *revocationtest.PKI) *deviceNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rev, err := revocation.New(revocation.Config{Store: st, Issuers: p})
	if err != nil {
		t.Fatal(err)
	}
	revDone := make(chan error, 1)
	go func() { revDone <- rev.Run(ctx) }()
	ln, err := NewDeviceListener(ctx, DeviceListenerConfig{
		Addr:              "127.0.0.1:0",
		Trust:             p,
		Revocation:        rev,
		ServerCertificate: p.ServerCertificate,
		PKI:               revocation.PKIHandler(rev),
		Devices:           rev,
	})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	ln.Handle("GET /v1/device/birth-only", []pki.IdentityKind{pki.IdentityBirth}, ok)
	ln.Handle("GET /v1/device/operational-only", []pki.IdentityKind{pki.IdentityOperational}, ok)
	ln.Handle("GET /v1/device/nobody", nil, ok)
	ln.HandleRenewal("GET /v1/device/renew", ok)
	lnDone := make(chan error, 1)
	go func() { lnDone <- ln.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-lnDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
		<-revDone
	})
	for start := time.Now(); rev.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 3*time.Second {
			t.Fatal("revocation service did not load")
		}
	}
	return &deviceNode{st: st, rev: rev, ln: ln}
}

// deviceGet makes a new TLS connection as cred and GETs path. It returns
// the status and body, or the error of a refused handshake.
func deviceGet(t *testing.T, n *deviceNode, p *revocationtest.PKI, cred *revocationtest.Credential, path string, sessions tls.ClientSessionCache) (int, string, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.Root.Certificate())
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: sessions}
	if cred != nil {
		c := cred.TLS()
		cfg.Certificates = []tls.Certificate{c}
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + n.ln.Addr() + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// refusedWithin polls new connections as cred until the handshake fails,
// and fails the test if that takes more than a few times the guarantee.
func refusedWithin(t *testing.T, n *deviceNode, p *revocationtest.PKI, cred *revocationtest.Credential) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, _, err := deviceGet(t, n, p, cred, DeviceIdentityPath, nil)
		if err != nil {
			return time.Since(start)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("a revoked certificate still connects after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeviceListenerIdentitiesAndRoutes(t *testing.T) {
	url := revocationtest.StoreURL(t)
	st := revocationtest.OpenStore(t, url)
	p := revocationtest.NewPKI(t, "f1")
	n := startDeviceNode(t, st, p)
	d := p.Device(t, st)
	birth := p.BirthCredential(t, st, d)
	op := p.OperationalCredential(t, st, d)

	status, body, err := deviceGet(t, n, p, &birth, DeviceIdentityPath, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET identity as birth: %d %s %v", status, body, err)
	}
	var id identityAnswer
	if err := json.Unmarshal([]byte(body), &id); err != nil {
		t.Fatal(err)
	}
	want := identityAnswer{Kind: pki.IdentityBirth, Factory: "f1", Serial: d.Identity.Serial, Model: "m1", DeviceID: d.ID}
	if id != want {
		t.Errorf("birth identity = %+v, want %+v", id, want)
	}
	status, body, err = deviceGet(t, n, p, &op, DeviceIdentityPath, nil)
	if err != nil || status != http.StatusOK || !jsonHas(t, body, "kind", "operational") || !jsonHas(t, body, "deviceId", d.ID) {
		t.Fatalf("GET identity as operational: %d %s %v", status, body, err)
	}

	for _, tc := range []struct {
		cred *revocationtest.Credential
		path string
		want int
	}{
		{&birth, "/v1/device/birth-only", http.StatusOK},
		{&birth, "/v1/device/operational-only", http.StatusForbidden},
		{&op, "/v1/device/operational-only", http.StatusOK},
		{&op, "/v1/device/birth-only", http.StatusForbidden},
		{&birth, "/v1/device/nobody", http.StatusForbidden},
		{&op, "/v1/device/nobody", http.StatusForbidden},
		{&op, "/v1/devices", http.StatusNotFound},
		{&op, "/pki/ca/" + revocationtest.RootID + ".pem", http.StatusOK},
		{&birth, "/pki/crl/" + revocationtest.ManufacturingID + ".crl", http.StatusOK},
	} {
		status, body, err := deviceGet(t, n, p, tc.cred, tc.path, nil)
		if err != nil || status != tc.want {
			t.Errorf("GET %s as %s: %d %q %v, want %d", tc.path, tc.cred.Certificate.Subject.CommonName, status, body, err, tc.want)
		}
	}
}

func TestDeviceListenerRefusesBadCertificates(t *testing.T) {
	url := revocationtest.StoreURL(t)
	st := revocationtest.OpenStore(t, url)
	p := revocationtest.NewPKI(t, "f1")
	n := startDeviceNode(t, st, p)
	d := p.Device(t, st)

	expired := p.ExpiredBirth(t, st, d)
	foreignPKI := revocationtest.NewPKI(t, "f1")
	foreign := foreignPKI.BirthCredential(t, st, foreignPKI.Device(t, st))
	// The foreign chain presented in full still ends at an untrusted root.
	foreign.Chain = append(foreign.Chain, foreignPKI.Root.Certificate())

	for name, cred := range map[string]*revocationtest.Credential{
		"expired":        &expired,
		"foreign CA":     &foreign,
		"no client cert": nil,
	} {
		if status, _, err := deviceGet(t, n, p, cred, DeviceIdentityPath, nil); err == nil {
			t.Errorf("%s: connected and got %d, want a refused handshake", name, status)
		}
	}
}

// A revoked certificate is refused on new connections, on the node that
// revoked it at once and on another node sharing the database within the
// guarantee, also when the client resumes an earlier TLS session.
func TestDeviceListenerRefusesRevoked(t *testing.T) {
	url := revocationtest.StoreURL(t)
	p := revocationtest.NewPKI(t, "f1")
	nodeA := startDeviceNode(t, revocationtest.OpenStore(t, url), p)
	nodeB := startDeviceNode(t, revocationtest.OpenStore(t, url), p)
	d := p.Device(t, nodeA.st)
	birth := p.BirthCredential(t, nodeA.st, d)
	op := p.OperationalCredential(t, nodeA.st, d)

	sessions := tls.NewLRUClientSessionCache(4)
	for _, n := range []*deviceNode{nodeA, nodeB} {
		for _, cred := range []*revocationtest.Credential{&birth, &op} {
			if status, _, err := deviceGet(t, n, p, cred, DeviceIdentityPath, sessions); err != nil || status != http.StatusOK {
				t.Fatalf("before revocation: %d %v", status, err)
			}
		}
	}

	if err := nodeA.rev.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, birth.Certificate.SerialNumber.Text(16),
		revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := deviceGet(t, nodeA, p, &birth, DeviceIdentityPath, sessions); err == nil {
		t.Fatal("the revoking node accepted a new connection with the revoked certificate")
	}
	t.Logf("node B refused the revoked birth certificate after %v", refusedWithin(t, nodeB, p, &birth))
	if _, _, err := deviceGet(t, nodeB, p, &birth, DeviceIdentityPath, sessions); err == nil {
		t.Fatal("node B accepted a resumed session of the revoked certificate")
	}
	// The device's operational certificate was not revoked.
	if status, _, err := deviceGet(t, nodeB, p, &op, DeviceIdentityPath, nil); err != nil || status != http.StatusOK {
		t.Fatalf("operational certificate after revoking the birth certificate: %d %v", status, err)
	}

	// Revoking everything of the device on node B reaches node A too.
	if _, err := nodeB.rev.RevokeDeviceCertificates(t.Context(), d.ID, revocation.ReasonCessationOfOperation, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	t.Logf("node A refused the revoked operational certificate after %v", refusedWithin(t, nodeA, p, &op))
}

func jsonHas(t *testing.T, body, key, want string) bool {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return m[key] == want
}

// An expired operational certificate still completes the handshake, but
// only renewal requests admit it (the template's renewal policy decides
// there); an expired birth certificate is refused at the handshake, and a
// revoked expired certificate too.
func TestDeviceListenerExpiredOperationalRenewsOnly(t *testing.T) {
	url := revocationtest.StoreURL(t)
	st := revocationtest.OpenStore(t, url)
	p := revocationtest.NewPKI(t, "f1")
	n := startDeviceNode(t, st, p)
	d := p.Device(t, st)
	expired := p.ExpiredOperational(t, st, d)

	if status, _, err := deviceGet(t, n, p, &expired, "/v1/device/renew", nil); err != nil || status != http.StatusOK {
		t.Fatalf("renewal with an expired operational certificate: %d %v, want 200", status, err)
	}
	for _, path := range []string{DeviceIdentityPath, "/v1/device/operational-only", "/pki/ca/" + revocationtest.RootID + ".pem"} {
		if status, _, err := deviceGet(t, n, p, &expired, path, nil); err != nil || status != http.StatusForbidden {
			t.Errorf("GET %s with an expired operational certificate: %d %v, want 403", path, status, err)
		}
	}
	birth := p.ExpiredBirth(t, st, d)
	if status, _, err := deviceGet(t, n, p, &birth, "/v1/device/renew", nil); err == nil {
		t.Errorf("expired birth certificate connected (%d)", status)
	}
	if err := n.rev.RevokeCertificate(t.Context(), revocationtest.OperationalID, expired.Certificate.SerialNumber.Text(16),
		revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, n, p, &expired)
}
