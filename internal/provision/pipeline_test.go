package provision_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/store"
)

func TestProvisionIssuesOperationalCertificate(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	key := pt.NewKey(t)
	csr := pt.MakeCSR(t, key, nil)

	a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, map[string]any{"parameters": map[string]any{"site": "lyon", "tier": "pro"}})
	resp, cert := n.Issued(t, a)
	if resp.DeviceID != dev.ID || cert.Subject.CommonName != dev.ID {
		t.Errorf("device id %q, subject %q; want %s", resp.DeviceID, cert.Subject.CommonName, dev.ID)
	}
	id, err := pki.IdentityOf(cert)
	if err != nil || id.Kind != pki.IdentityOperational || id.DeviceID != dev.ID {
		t.Errorf("identity of issued certificate = %+v, %v", id, err)
	}
	if err := cert.CheckSignatureFrom(n.PKI.Operational.Certificate()); err != nil {
		t.Errorf("not signed by the operational CA: %v", err)
	}
	if resp.Region != "eu-test" || resp.Configuration.Attributes["site"] != "lyon" || resp.Configuration.Configuration["serial"] != dev.Identity.Serial {
		t.Errorf("response configuration = %+v", resp)
	}

	d, err := n.Store.GetDevice(context.Background(), dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Lifecycle.State != fleet.StateProvisioned || d.Attributes["tier"] != "pro" || d.Inventory.Groups[0] != "fleet-pro" ||
		d.Attributes[provision.AttrTopicsPublish] != "devices/"+d.ID+"/telemetry" {
		t.Errorf("device after provisioning: state %s attrs %v groups %v", d.Lifecycle.State, d.Attributes, d.Inventory.Groups)
	}
	certs, _ := n.Store.CertificatesByDevice(context.Background(), d.ID)
	if len(certs) != 2 || certs[1].Kind != store.CertOperational || certs[1].Serial != store.SerialHex(cert.SerialNumber) {
		t.Errorf("certificates = %+v", certs)
	}
	if !pt.HasEvent(n.Events(t, d.ID), provision.EventProvisioned, `"templateVersion":1`) {
		t.Error("no device.provisioned event naming the template version")
	}

	// The same CSR again: the same certificate, never a second one.
	again := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil)
	_, cert2 := n.Issued(t, again)
	if !cert2.Equal(cert) {
		t.Error("a retry with the same CSR got a different certificate")
	}
	if certs, _ := n.Store.CertificatesByDevice(context.Background(), d.ID); len(certs) != 2 {
		t.Errorf("a retry issued another certificate: %d certificates", len(certs))
	}

	// The operational certificate works on the device listener, the
	// birth route refuses it.
	op := pt.TLSCred(cert, key, n.PKI.Operational.Certificate())
	if a := n.ProvisionJSON(t, op, provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil); a.Status != http.StatusForbidden {
		t.Errorf("operational certificate on the provisioning route: %d", a.Status)
	}
}

func TestRefusedDeviceGetsGenericError(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Models = []string{"another-model"}
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil)
	if a.Status != http.StatusForbidden || string(a.Body) != "{\"code\":\"refused\",\"message\":\"provisioning refused\"}\n" {
		t.Fatalf("refused device got %d %s", a.Status, a.Body)
	}
	if !pt.HasEvent(n.Events(t, dev.ID), provision.EventRefused, `does not serve factory`) {
		t.Error("the history does not say why the device was refused")
	}
}

func TestCSRRules(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	weak := weakKey(t)
	for _, tc := range []struct {
		name   string
		csr    func(dev pt.Device) []byte
		reason string
	}{
		{"same key as birth", func(dev pt.Device) []byte { return pt.MakeCSR(t, dev.Birth.Key, nil) }, "birth certificate's key"},
		{"CA:true", func(pt.Device) []byte {
			return pt.MakeCSR(t, pt.NewKey(t), &x509.CertificateRequest{ExtraExtensions: caExtension(t)})
		}, "ca_requested"},
		{"weak key", func(pt.Device) []byte { return pt.MakeCSR(t, weak, nil) }, "weak_key"},
		{"extra EKU", func(pt.Device) []byte {
			return pt.MakeCSR(t, pt.NewKey(t), &x509.CertificateRequest{ExtraExtensions: ekuExtension(t)})
		}, "extra_eku"},
		{"bad signature", func(pt.Device) []byte { c := pt.MakeCSR(t, pt.NewKey(t), nil); c[len(c)-3] ^= 0xff; return c }, "CSR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := n.Manufacture(t)
			a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, tc.csr(dev), nil)
			if a.Status != http.StatusForbidden {
				t.Fatalf("answer %d %s, want 403", a.Status, a.Body)
			}
			if !pt.HasEvent(n.Events(t, dev.ID), provision.EventRefused, tc.reason) {
				t.Errorf("history has no refusal mentioning %q: %+v", tc.reason, n.Events(t, dev.ID))
			}
			if certs, _ := n.Store.CertificatesByDevice(context.Background(), dev.ID); len(certs) != 1 {
				t.Errorf("a refused CSR left %d certificates", len(certs))
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.RateLimit = &provision.RateLimit{Burst: 2, Every: provision.Duration(3600e9)}
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	csr := pt.MakeCSR(t, pt.NewKey(t), nil)
	for i := range 2 {
		if a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil); a.Status != http.StatusOK {
			t.Fatalf("attempt %d: %d %s", i, a.Status, a.Body)
		}
	}
	a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil)
	if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") == "" {
		t.Fatalf("third attempt: %d Retry-After %q", a.Status, a.Header.Get("Retry-After"))
	}
}
