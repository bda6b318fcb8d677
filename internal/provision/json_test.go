package provision_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

func TestJSONBadRequests(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Approval = provision.ApprovalManual
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	birth := dev.Birth.TLS()
	c := n.Client(&birth)
	url := n.URL(provision.PathProvision)
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"not JSON", "application/json", "{", http.StatusBadRequest, "bad_request"},
		{"unknown field", "application/json", `{"csr":"x","color":"red"}`, http.StatusBadRequest, "bad_request"},
		{"wrong content type", "text/plain", `{"csr":"x"}`, http.StatusBadRequest, "bad_request"},
		{"no CSR", "application/json", `{}`, http.StatusBadRequest, "bad_request"},
		{"CSR not base64", "application/json", `{"csr":"%%%"}`, http.StatusBadRequest, "bad_request"},
		{"claim with a certificate", "application/json", `{"csr":` + jsonString(pemCSR(pt.MakeCSR(t, pt.NewKey(t), nil))) + `,"claim":"x"}`, http.StatusBadRequest, "bad_request"},
		{"undeclared parameter", "application/json", `{"csr":` + jsonString(pemCSR(pt.MakeCSR(t, pt.NewKey(t), nil))) + `,"parameters":{"color":"red"}}`, http.StatusBadRequest, "bad_request"},
		{"too large", "application/json", `{"csr":"` + strings.Repeat("A", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	} {
		a := pt.Do(t, c, "POST", url, tc.ctype, []byte(tc.body))
		var e provision.JSONError
		a.JSON(t, &e)
		if a.Status != tc.status || e.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, a.Status, a.Body, tc.status, tc.code)
		}
	}

	// The status route lists the caller's request in flight.
	n.ProvisionJSON(t, birth, provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil)
	var st provision.StatusAnswer
	pt.Do(t, c, "GET", n.URL(provision.PathStatus), "", nil).JSON(t, &st)
	if len(st.Requests) != 1 || st.Requests[0].Status != "pending" {
		t.Errorf("status = %+v", st)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer("\n", `\n`, `"`, `\"`).Replace(s) + `"`
}
