package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/internal/region"
)

// TestRegionRoutesOnTheDeviceListener: the probe and the bootstrap
// document answer birth and operational certificates; reports take only
// operational ones, and refuse malformed bodies with 400.
func TestRegionRoutesOnTheDeviceListener(t *testing.T) {
	eu := startRegionNode(t, sharedDatabase(t), "eu")
	m := mintFleet(t, eu.admin, 1)[0]
	birth, err := tls.X509KeyPair([]byte(m.CertificatePEM), []byte(m.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{Server: "https://" + eu.srv.DeviceAddr(), Roots: eu.roots, Birth: birth, Dir: filepath.Join(t.TempDir(), "dev")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	creds, err := ag.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op := creds.TLSCertificate()
	// Without measurements, lowest-latency falls back to weighted: the
	// only region.
	if creds.Info.Region != "eu" || creds.Info.Redirect != nil {
		t.Fatalf("provisioned into %q (redirect %+v)", creds.Info.Region, creds.Info.Redirect)
	}

	do := func(cert tls.Certificate, method, path string, body []byte) (int, []byte) {
		t.Helper()
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: eu.roots, ServerName: "localhost"}}}
		req, _ := http.NewRequest(method, "https://"+eu.srv.DeviceAddr()+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	for _, cert := range []tls.Certificate{birth, op} {
		if status, body := do(cert, "GET", ProbePath, nil); status != http.StatusOK || string(body) != `{"region":"eu"}` {
			t.Errorf("probe: %d %s", status, body)
		}
		status, body := do(cert, "GET", BootstrapPath, nil)
		if status != http.StatusOK {
			t.Fatalf("bootstrap: %d %s", status, body)
		}
		doc, err := region.VerifyBootstrap(string(body), eu.roots, time.Now())
		if err != nil || doc.Node != "eu" || len(doc.Regions) != 1 || doc.Regions[0].ProbeURL != "https://"+eu.srv.DeviceAddr()+ProbePath {
			t.Errorf("bootstrap document %+v, %v", doc, err)
		}
	}

	report := []byte(`{"measurements":{"eu":{"medianMs":12,"samplesMs":[11,12,13]}}}`)
	if status, _ := do(birth, "POST", RegionReportPath, report); status != http.StatusForbidden {
		t.Errorf("report with a birth certificate: %d, want 403", status)
	}
	for name, body := range map[string]string{
		"not JSON":      "measurements",
		"unknown field": `{"rtt":{"eu":12}}`,
		"wrong type":    `{"measurements":{"eu":"fast"}}`,
	} {
		if status, b := do(op, "POST", RegionReportPath, []byte(body)); status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, status, b)
		}
	}
	status, body := do(op, "POST", RegionReportPath, report)
	var ans region.ReportAnswer
	if status != http.StatusOK || json.Unmarshal(body, &ans) != nil || ans.Region != "eu" || ans.Moved {
		t.Errorf("report: %d %s", status, body)
	}
}
