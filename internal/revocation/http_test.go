package revocation_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

// openssl runs the openssl binary, the reference client of the issue, and
// returns its combined output; it fails the test when openssl fails.
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl binary not installed (.ci/run installs it)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestCRLAndOCSPWithOpenSSL walks the issue's "done when": openssl reads
// the CRL and asks the OCSP responder, before and after a revocation.
func TestCRLAndOCSPWithOpenSSL(t *testing.T) {
	f := newFixture(t)
	svc := f.node(t, f.st)
	srv := httptest.NewServer(revocation.PKIHandler(svc))
	t.Cleanup(srv.Close)
	dir := t.TempDir()

	d := f.pki.Device(t, f.st)
	birth := f.pki.BirthCredential(t, f.st, d)
	rootFile := f.pki.WriteRoot(t, dir)
	issuerFile := revocationtest.WritePEM(t, dir, "mfg.pem", f.pki.Manufacturing.Certificate())
	certFile := revocationtest.WritePEM(t, dir, "birth.pem", birth.Certificate)
	// Issued by the manufacturing CA, but never recorded: not Muster's.
	stray, err := f.pki.Manufacturing.Issue(t.Context(), pki.BirthProfile{Factory: "f1", Serial: "stray"}, birth.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	strayFile := revocationtest.WritePEM(t, dir, "stray.pem", stray)

	ocspStatus := func(cert string) string {
		t.Helper()
		out := openssl(t, "ocsp", "-issuer", issuerFile, "-cert", cert, "-url", srv.URL+revocation.OCSPPath,
			"-CAfile", rootFile, "-no_nonce")
		if !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl did not verify the OCSP response:\n%s", out)
		}
		return out
	}
	if out := ocspStatus(certFile); !strings.Contains(out, certFile+": good") {
		t.Fatalf("OCSP before revocation:\n%s", out)
	}
	if out := ocspStatus(strayFile); !strings.Contains(out, strayFile+": unknown") {
		t.Fatalf("OCSP for a certificate Muster never issued:\n%s", out)
	}

	serial := strings.ToUpper(birth.Certificate.SerialNumber.Text(16))
	if err := svc.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, serial, revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	if out := ocspStatus(certFile); !strings.Contains(out, certFile+": revoked") || !strings.Contains(out, "Reason: keyCompromise") {
		t.Fatalf("OCSP after revocation:\n%s", out)
	}

	resp, der := get(t, srv.URL+revocation.CRLPath+revocationtest.ManufacturingID+".crl")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET CRL: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	crlFile := filepath.Join(dir, "mfg.crl")
	if err := os.WriteFile(crlFile, der, 0o600); err != nil {
		t.Fatal(err)
	}
	text := openssl(t, "crl", "-inform", "DER", "-in", crlFile, "-noout", "-text")
	for _, want := range []string{"Serial Number: " + serial, "Key Compromise", "X509v3 CRL Number"} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl output lacks %q:\n%s", want, text)
		}
	}
	chainFile := revocationtest.WritePEM(t, dir, "chain.pem", f.pki.Manufacturing.Certificate(), f.pki.Root.Certificate())
	if out := openssl(t, "crl", "-inform", "DER", "-in", crlFile, "-noout", "-CAfile", chainFile); !strings.Contains(out, "verify OK") {
		t.Errorf("openssl did not verify the CRL signature: %s", out)
	}
}

func TestPKIHandler(t *testing.T) {
	f := newFixture(t)
	svc := f.node(t, f.st)
	srv := httptest.NewServer(revocation.PKIHandler(svc))
	t.Cleanup(srv.Close)

	resp, body := get(t, srv.URL+revocation.CAPath+revocationtest.OperationalID+".pem")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.pki.Operational.CertificatePEM()) {
		t.Fatalf("GET CA certificate: %d %q", resp.StatusCode, body)
	}
	for _, path := range []string{
		revocation.CAPath + "ca-nope.pem",
		revocation.CAPath + revocationtest.OperationalID,
		revocation.CRLPath + "ca-nope.crl",
		revocation.CRLPath + revocationtest.OperationalID + ".pem",
		"/pki/other",
	} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+revocation.CRLPath+revocationtest.OperationalID+".crl", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST CRL: %d, want 405", resp.StatusCode)
	}

	// OCSP over GET (the base64 may contain "/", which must reach the
	// responder unchanged) and over POST.
	d := f.pki.Device(t, f.st)
	op := f.pki.OperationalCredential(t, f.st, d)
	req, err := ocsp.CreateRequest(op.Certificate, f.pki.Operational.Certificate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(req)
	resp, body = get(t, srv.URL+revocation.OCSPPath+"/"+enc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OCSP GET: %d", resp.StatusCode)
	}
	parsed, err := ocsp.ParseResponseForCert(body, op.Certificate, f.pki.Operational.Certificate())
	if err != nil || parsed.Status != ocsp.Good {
		t.Fatalf("OCSP GET answer = %+v, %v", parsed, err)
	}
	resp, err = http.Post(srv.URL+revocation.OCSPPath, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if parsed, err := ocsp.ParseResponseForCert(body, op.Certificate, f.pki.Operational.Certificate()); err != nil || parsed.Status != ocsp.Good {
		t.Fatalf("OCSP POST answer = %+v, %v", parsed, err)
	}
}

// Before its first refresh a node cannot tell an unknown CA from one it
// has not loaded yet, so it asks clients to retry rather than saying 404.
func TestPKIHandlerBeforeLoad(t *testing.T) {
	f := newFixture(t)
	svc, err := revocation.New(revocation.Config{Store: f.st, Issuers: f.pki})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(revocation.PKIHandler(svc))
	t.Cleanup(srv.Close)
	for _, path := range []string{revocation.CRLPath + revocationtest.OperationalID + ".crl", revocation.CAPath + revocationtest.OperationalID + ".pem"} {
		resp, _ := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s before load: %d, Retry-After %q; want 503 with Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}
