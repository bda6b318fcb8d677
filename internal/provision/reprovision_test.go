package provision_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/store"
)

func TestRenewal(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	key := pt.NewKey(t)
	_, cert := n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, key, nil), nil))
	op := pt.TLSCred(cert, key, n.PKI.Operational.Certificate())

	// The birth certificate cannot renew; the operational one can.
	if a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathRenew, pt.MakeCSR(t, pt.NewKey(t), nil), nil); a.Status != http.StatusForbidden {
		t.Errorf("renewal with the birth certificate: %d", a.Status)
	}
	key2 := pt.NewKey(t)
	same := &x509.CertificateRequest{Subject: pkix.Name{CommonName: dev.ID}}
	_, cert2 := n.Issued(t, n.ProvisionJSON(t, op, provision.PathRenew, pt.MakeCSR(t, key2, same), nil))
	if cert2.Subject.CommonName != dev.ID || cert2.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("renewed certificate %s serial %x", cert2.Subject.CommonName, cert2.SerialNumber)
	}
	// The old certificate stays valid until it expires (revokeOld unset).
	st, _ := n.Store.CertificateStatus(context.Background(), "ca-operational", store.SerialHex(cert.SerialNumber))
	if st.RevokedAt != nil {
		t.Error("renewal revoked the old certificate although the template keeps it")
	}
	if !pt.HasEvent(n.Events(t, dev.ID), provision.EventRenewed, store.SerialHex(cert2.SerialNumber)) {
		t.Error("renewal not recorded")
	}
	// A CSR naming another subject is refused.
	other := pt.MakeCSR(t, pt.NewKey(t), nil) // CN whatever-the-device-says
	if a := n.ProvisionJSON(t, op, provision.PathRenew, other, nil); a.Status != http.StatusForbidden {
		t.Errorf("renewal for another subject: %d", a.Status)
	}
}

func TestReprovisioningPolicies(t *testing.T) {
	for _, policy := range []string{provision.ReprovisionMigrate, provision.ReprovisionReset, provision.ReprovisionNever} {
		t.Run(policy, func(t *testing.T) {
			n := pt.Start(t)
			tmpl := pt.BasicTemplate(provision.DefaultTemplate)
			tmpl.Reprovisioning = policy
			n.PutTemplate(t, tmpl)
			dev := n.Manufacture(t)
			key := pt.NewKey(t)
			_, cert := n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, key, nil),
				map[string]any{"parameters": map[string]any{"site": "lyon"}}))
			// An operator adds an attribute, then the device is factory-reset.
			ctx := context.Background()
			_, err := n.Store.UpdateDevice(ctx, dev.ID, 0, "operator/alice", func(d *fleet.Device) (*store.Change, error) {
				d.Attributes["owner-note"] = "keep me"
				return &store.Change{Type: fleet.EventUpdated}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil),
				map[string]any{"parameters": map[string]any{"site": "paris"}})
			d, _ := n.Store.GetDevice(ctx, dev.ID)
			old, _ := n.Store.CertificateStatus(ctx, "ca-operational", store.SerialHex(cert.SerialNumber))
			if policy == provision.ReprovisionNever {
				if a.Status != http.StatusForbidden || old.RevokedAt != nil {
					t.Fatalf("never: %d, old revoked %v", a.Status, old.RevokedAt)
				}
				return
			}
			n.Issued(t, a)
			if old.RevokedAt == nil {
				t.Error("re-provisioning left the old operational certificate valid")
			}
			want := map[string]string{provision.ReprovisionMigrate: "lyon", provision.ReprovisionReset: "paris"}[policy]
			_, kept := d.Attributes["owner-note"]
			if d.Attributes["site"] != want || kept != (policy == provision.ReprovisionMigrate) || d.Lifecycle.State != fleet.StateProvisioned {
				t.Errorf("%s: attributes %v state %s", policy, d.Attributes, d.Lifecycle.State)
			}
			if !pt.HasEvent(n.Events(t, d.ID), provision.EventReprovisioned, `"policy":"`+policy+`"`) ||
				!pt.HasEvent(n.Events(t, d.ID), fleet.EventCertificateRevoked, store.SerialHex(cert.SerialNumber)) {
				t.Error("re-provisioning or revocation not recorded")
			}
			// The old certificate no longer connects, within the revocation refresh.
			old2 := pt.TLSCred(cert, key, n.PKI.Operational.Certificate())
			deadline := time.Now().Add(10 * time.Second) // generous: a loaded machine
			for {
				req, _ := http.NewRequest("GET", n.URL(provision.PathStatus), nil)
				resp, err := n.Client(&old2).Do(req)
				if err != nil {
					break
				}
				resp.Body.Close()
				if time.Now().After(deadline) {
					t.Fatal("the revoked certificate still connects")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestClaims(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate("installer")
	tmpl.AutoRegister = true
	n.PutTemplate(t, tmpl)
	srv := claimServer(t, n)
	ctx := context.Background()
	secret := "clm-secret-1"
	sum := sha256.Sum256([]byte(secret))
	c := &store.Claim{Hash: hex.EncodeToString(sum[:]), Factory: "f1", Model: "m1", Serial: "FIELD-1", Template: "installer", ExpiresAt: time.Now().Add(5 * time.Minute)}
	if err := n.Store.CreateClaim(ctx, c, "installer/bob"); err != nil {
		t.Fatal(err)
	}
	csr := pt.MakeCSR(t, pt.NewKey(t), nil)
	claimBody := func(secret string, csr []byte) []byte {
		b, _ := json.Marshal(map[string]any{"claim": secret, "csr": pemCSR(csr)})
		return b
	}
	resp, _ := n.Issued(t, pt.Do(t, srv.Client(), "POST", srv.URL+provision.PathClaim, "application/json", claimBody(secret, csr)))
	d, err := n.Store.FindDevice(ctx, "f1", "m1", "FIELD-1")
	if err != nil || d.ID != resp.DeviceID {
		t.Fatalf("claimed device %v %v", d, err)
	}
	// The same request again is an idempotent retry; any other use is refused.
	if a := pt.Do(t, srv.Client(), "POST", srv.URL+provision.PathClaim, "application/json", claimBody(secret, csr)); a.Status != http.StatusOK {
		t.Errorf("retry of the claimed request: %d", a.Status)
	}
	if a := pt.Do(t, srv.Client(), "POST", srv.URL+provision.PathClaim, "application/json", claimBody(secret, pt.MakeCSR(t, pt.NewKey(t), nil))); a.Status != http.StatusForbidden {
		t.Errorf("second use of a claim: %d", a.Status)
	}
	expired := &store.Claim{Hash: "00", Factory: "f1", Model: "m1", Serial: "FIELD-2", ExpiresAt: time.Now().Add(-time.Second)}
	if err := n.Store.CreateClaim(ctx, expired, "installer/bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.RedeemClaim(ctx, "00", "x", time.Now()); err == nil {
		t.Error("an expired claim was redeemed")
	}
}

func TestQuarantinedDeviceNeedsAnOperator(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil))
	ctx := context.Background()
	move := func(to fleet.State) {
		t.Helper()
		_, err := n.Store.UpdateDevice(ctx, dev.ID, 0, "operator/alice", func(d *fleet.Device) (*store.Change, error) {
			ch, err := d.Move(to, "operator/alice", "test", time.Now())
			return &store.Change{Type: fleet.EventStateChanged, Data: ch}, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	move(fleet.StateQuarantined)
	if a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil); a.Status != http.StatusForbidden {
		t.Fatalf("a quarantined device re-provisioned itself: %d", a.Status)
	}
	move(fleet.StateReprovisioning)
	n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil))
	if d, _ := n.Store.GetDevice(ctx, dev.ID); d.Lifecycle.State != fleet.StateProvisioned {
		t.Errorf("device is %s", d.Lifecycle.State)
	}
}
