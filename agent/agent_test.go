package agent_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/internal/est"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/store"
)

func newAgent(t *testing.T, n *pt.Node, dev pt.Device, mod func(*agent.Config)) *agent.Agent {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(n.PKI.Root.Certificate())
	cfg := agent.Config{Server: strings.Replace(n.URL(""), "127.0.0.1", "localhost", 1), Roots: roots, Birth: dev.Birth.TLS(), Dir: t.TempDir(), MaxWait: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestProvisionRenewReprovision(t *testing.T) {
	for _, protocol := range []string{agent.ProtocolJSON, agent.ProtocolEST} {
		t.Run(protocol, func(t *testing.T) {
			n := pt.Start(t)
			est.Register(n.Listener, n.Pipeline, nil)
			n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
			dev := n.Manufacture(t)
			var dir string
			a := newAgent(t, n, dev, func(c *agent.Config) { c.Protocol = protocol; dir = c.Dir })
			ctx := context.Background()
			c, err := a.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.DeviceID != dev.ID || c.Certificate.Subject.CommonName != dev.ID || len(c.Chain) != 2 {
				t.Fatalf("credentials for %s: %+v", dev.ID, c)
			}
			// The stored bundle works as a TLS client certificate as it is.
			if _, err := tls.LoadX509KeyPair(filepath.Join(dir, agent.CredentialsFile), filepath.Join(dir, agent.CredentialsFile)); err != nil {
				t.Fatalf("credentials.pem: %v", err)
			}
			renewed, err := a.Renew(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if renewed.Certificate.Equal(c.Certificate) || renewed.DeviceID != dev.ID {
				t.Fatal("renewal returned the old certificate")
			}
			loaded, err := a.Load()
			if err != nil || !loaded.Certificate.Equal(renewed.Certificate) {
				t.Fatalf("stored credentials are not the renewed ones: %v", err)
			}
			// Factory reset: provision again with the birth certificate.
			again, err := a.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := n.Store.CertificateStatus(ctx, "ca-operational", store.SerialHex(renewed.Certificate.SerialNumber))
			if again.DeviceID != dev.ID || st.RevokedAt == nil {
				t.Errorf("re-provisioning: device %s, old certificate revoked at %v", again.DeviceID, st.RevokedAt)
			}
		})
	}
}

func TestWaitsForApprovalAcrossRestarts(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Approval = provision.ApprovalManual
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	var dir string
	first := newAgent(t, n, dev, func(c *agent.Config) { c.MaxWait = time.Millisecond; dir = c.Dir })
	if _, err := first.Provision(context.Background()); err == nil {
		t.Fatal("provisioned without approval")
	}
	// The device restarts and retries with the same key and CSR.
	second := newAgent(t, n, dev, func(c *agent.Config) { c.Dir = dir })
	done := make(chan error, 1)
	go func() { _, err := second.Provision(context.Background()); done <- err }()
	list, err := n.Store.PendingApprovals(context.Background())
	for start := time.Now(); err == nil && len(list) == 0 && time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		list, err = n.Store.PendingApprovals(context.Background())
	}
	if err != nil || len(list) != 1 {
		t.Fatalf("pending: %+v %v (a restart must not queue a second request)", list, err)
	}
	if _, err := n.Store.DecideApproval(context.Background(), list[0].ID, true, "", "operator/alice"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d, _ := n.Store.GetDevice(context.Background(), dev.ID); d.Lifecycle.State != fleet.StateProvisioned {
		t.Errorf("device is %s", d.Lifecycle.State)
	}
}

func TestRefusedAndClaim(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate("installer")
	tmpl.AutoRegister = true
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	a := newAgent(t, n, dev, nil) // no "default" template: refused
	if _, err := a.Provision(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}

	srv := httptest.NewTLSServer(n.Pipeline.ClaimHandler(nil))
	defer srv.Close()
	sum := sha256.Sum256([]byte("the-secret"))
	claim := &store.Claim{Hash: hex.EncodeToString(sum[:]), Factory: "f1", Model: "m1", Serial: "NO-BIRTH-1", Template: "installer", ExpiresAt: time.Now().Add(time.Minute)}
	if err := n.Store.CreateClaim(context.Background(), claim, "installer/bob"); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c, err := agent.New(agent.Config{ClaimServer: srv.URL, Claim: "the-secret", Roots: roots, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := c.Provision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Store.FindDevice(context.Background(), "f1", "m1", "NO-BIRTH-1")
	if err != nil || d.ID != creds.DeviceID {
		t.Errorf("claimed device %v, %v", d, err)
	}
}

// A rotate command renews the certificate once; the same (retained) command
// seen again after the renewal changes nothing, and other commands are left
// to the firmware.
func TestRotateCommand(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	a := newAgent(t, n, dev, nil)
	ctx := context.Background()
	first, err := a.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topic := "devices/" + dev.ID + "/commands/" + agent.RotateCommand
	time.Sleep(1100 * time.Millisecond) // certificate times have whole seconds
	payload := []byte(`{"requestedAt":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","reason":"key rotation policy"}`)
	if _, handled, err := a.HandleCommand(ctx, topic, payload); err != nil || !handled {
		t.Fatalf("rotate: handled %v, %v", handled, err)
	}
	renewed := a.Credentials()
	if renewed.Certificate.Equal(first.Certificate) {
		t.Fatal("rotate did not renew the certificate")
	}
	// The same retained command again, as at the next connection: the
	// renewed certificate is newer than the command, so nothing happens.
	if _, handled, err := a.HandleCommand(ctx, topic, payload); err != nil || !handled || !a.Credentials().Certificate.Equal(renewed.Certificate) {
		t.Fatalf("a rotate older than the certificate renewed again (handled %v, %v)", handled, err)
	}
	cmd, handled, err := a.HandleCommand(ctx, "devices/"+dev.ID+"/commands/reboot", []byte("now"))
	if err != nil || handled || cmd.Name != "reboot" || string(cmd.Payload) != "now" {
		t.Errorf("other command: %+v handled %v, %v", cmd, handled, err)
	}
	if _, _, err := a.HandleCommand(ctx, "devices/dev_other/commands/rotate", payload); err == nil {
		t.Error("a command for another device was accepted")
	}
}
