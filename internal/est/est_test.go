package est_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/est"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

func startEST(t *testing.T, tmpl provision.Template) *pt.Node {
	t.Helper()
	n := pt.Start(t)
	est.Register(n.Listener, n.Pipeline, nil)
	n.PutTemplate(t, tmpl)
	return n
}

func enroll(t *testing.T, n *pt.Node, cred tls.Certificate, path string, body string) pt.Answer {
	t.Helper()
	return pt.Do(t, n.Client(&cred), "POST", n.URL(path), "application/pkcs10", []byte(body))
}

func certsOf(t *testing.T, a pt.Answer) []*x509.Certificate {
	t.Helper()
	if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/pkcs7-mime") {
		t.Fatalf("answer %d %s: %s", a.Status, a.Header.Get("Content-Type"), a.Body)
	}
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(a.Body)))
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := est.ParseCertsOnly(der)
	if !ok {
		t.Fatal("answer is not a certs-only PKCS #7")
	}
	var out []*x509.Certificate
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestEnrollWithTemplateLabelAndManualApproval(t *testing.T) {
	tmpl := pt.BasicTemplate("lines")
	tmpl.Approval = provision.ApprovalManual
	n := startEST(t, tmpl)
	dev := n.Manufacture(t)
	// RFC 8951: no padding, odd line breaks.
	b64 := base64.RawStdEncoding.EncodeToString(pt.MakeCSR(t, pt.NewKey(t), nil))
	body := b64[:10] + "\n" + b64[10:40] + "\r\n " + b64[40:]
	a := enroll(t, n, dev.Birth.TLS(), est.PathPrefix+"/lines/simpleenroll", body)
	if a.Status != http.StatusAccepted || a.Header.Get("Retry-After") == "" {
		t.Fatalf("manual approval: %d %q Retry-After %q", a.Status, a.Body, a.Header.Get("Retry-After"))
	}
	list, _ := n.Store.PendingApprovals(context.Background())
	if len(list) != 1 || list[0].Template != "lines" {
		t.Fatalf("pending = %+v", list)
	}
	if _, err := n.Store.DecideApproval(context.Background(), list[0].ID, true, "ok", "operator/alice"); err != nil {
		t.Fatal(err)
	}
	certs := certsOf(t, enroll(t, n, dev.Birth.TLS(), est.PathPrefix+"/lines/simpleenroll", body))
	if len(certs) != 1 || certs[0].Subject.CommonName != dev.ID {
		t.Fatalf("enrolled %+v", certs)
	}
	ca := certsOf(t, pt.Do(t, n.Client(new(dev.Birth.TLS())), "GET", n.URL(est.PathPrefix+"/cacerts"), "", nil))
	if len(ca) != 2 || !ca[0].Equal(n.PKI.Operational.Certificate()) {
		t.Errorf("cacerts = %d certificates", len(ca))
	}
	// A birth certificate cannot reenroll; garbage is a 400.
	if a := enroll(t, n, dev.Birth.TLS(), est.PathPrefix+"/simplereenroll", b64); a.Status != http.StatusForbidden {
		t.Errorf("birth reenroll: %d", a.Status)
	}
	if a := enroll(t, n, dev.Birth.TLS(), est.PathPrefix+"/simpleenroll", "%%%"); a.Status != http.StatusBadRequest {
		t.Errorf("garbage: %d", a.Status)
	}
}

// TestBirthCertificateOnlyProvisions walks every device-listener route and
// every admin API route with a birth certificate: only the provisioning
// routes (and the identity and PKI information routes every device may
// read) admit it, and the admin API, which authenticates with tokens,
// answers 401.
func TestBirthCertificateOnlyProvisions(t *testing.T) {
	n := startEST(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	birth := dev.Birth.TLS()
	c := n.Client(&birth)
	csr := base64.StdEncoding.EncodeToString(pt.MakeCSR(t, pt.NewKey(t), nil))
	jsonCSR, _ := json.Marshal(map[string]string{"csr": csr})
	for _, tc := range []struct {
		method, path, ctype, body string
		admitted                  bool
	}{
		{"GET", est.PathPrefix + "/cacerts", "", "", true},
		{"GET", est.PathPrefix + "/default/cacerts", "", "", true},
		{"GET", est.PathPrefix + "/csrattrs", "", "", true},
		{"GET", est.PathPrefix + "/default/csrattrs", "", "", true},
		{"POST", est.PathPrefix + "/simpleenroll", "application/pkcs10", csr, true},
		{"POST", est.PathPrefix + "/default/simpleenroll", "application/pkcs10", csr, true},
		{"POST", est.PathPrefix + "/simplereenroll", "application/pkcs10", csr, false},
		{"POST", est.PathPrefix + "/default/simplereenroll", "application/pkcs10", csr, false},
		{"POST", provision.PathProvision, "application/json", string(jsonCSR), true},
		{"POST", provision.PathRenew, "application/json", string(jsonCSR), false},
		{"GET", provision.PathStatus, "", "", true},
		{"GET", "/v1/device/identity", "", "", true},
		{"GET", "/pki/ca/" + "ca-root.pem", "", "", true},
		{"GET", "/v1/devices", "", "", false},
		{"POST", "/v1/provision/claim", "application/json", string(jsonCSR), false},
	} {
		a := pt.Do(t, c, tc.method, n.URL(tc.path), tc.ctype, []byte(tc.body))
		if refused := a.Status == http.StatusForbidden || a.Status == http.StatusNotFound; refused == tc.admitted {
			t.Errorf("%s %s with a birth certificate: %d %s (admitted: %t)", tc.method, tc.path, a.Status, a.Body, tc.admitted)
		}
	}

	// The admin API: every route in its OpenAPI document.
	srv := httptest.NewUnstartedServer(api.New(api.Config{Store: n.Store}).Handler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{birth}
	admin := &http.Client{Transport: tr}
	var doc struct {
		Paths map[string]map[string]struct {
			Permission string `json:"x-muster-permission"`
		} `json:"paths"`
	}
	pt.Do(t, admin, "GET", srv.URL+"/v1/openapi.json", "", nil).JSON(t, &doc)
	if len(doc.Paths) < 10 {
		t.Fatalf("OpenAPI document lists %d paths", len(doc.Paths))
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			a := pt.Do(t, admin, strings.ToUpper(method), srv.URL+strings.NewReplacer("{id}", "x", "{caId}", "x", "{serial}", "1", "{name}", "x").Replace(path), "application/json", []byte("{}"))
			want := http.StatusUnauthorized
			if op.Permission == "" {
				want = http.StatusOK
			}
			if a.Status != want {
				t.Errorf("admin API %s %s with a birth certificate and no token: %d, want %d", method, path, a.Status, want)
			}
		}
	}
}
