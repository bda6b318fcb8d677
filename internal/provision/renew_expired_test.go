package provision_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"

	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

// An expired operational certificate passes the device listener only on
// the renewal routes, and there the template's renewal policy decides.
func TestExpiredOperationalRenewal(t *testing.T) {
	for _, allow := range []bool{true, false} {
		n := pt.Start(t)
		tmpl := pt.BasicTemplate(provision.DefaultTemplate)
		tmpl.Renewal.AllowExpired = allow
		n.PutTemplate(t, tmpl)
		dev := n.Manufacture(t)
		n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil))

		expired := n.PKI.ExpiredOperational(t, n.Store, dev.Device)
		csr := pt.MakeCSR(t, pt.NewKey(t), &x509.CertificateRequest{Subject: pkix.Name{CommonName: dev.ID}})
		a := n.ProvisionJSON(t, expired.TLS(), provision.PathRenew, csr, nil)
		want := http.StatusForbidden
		if allow {
			want = http.StatusOK
		}
		if a.Status != want {
			t.Errorf("allowExpired=%v: renewal with an expired certificate answered %d %s, want %d", allow, a.Status, a.Body, want)
		}
		cred := expired.TLS()
		if st := pt.Do(t, n.Client(&cred), "GET", n.URL(provision.PathStatus), "", nil); st.Status != http.StatusForbidden {
			t.Errorf("allowExpired=%v: status route with an expired certificate answered %d, want 403", allow, st.Status)
		}
	}
}
