package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// isolateEnv unsets the CLI's environment variables for the test, so the
// developer's own settings cannot leak in.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"MUSTER_SERVER", "MUSTER_TOKEN", "MUSTER_DATA_DIR", "MUSTER_CA_FILE"} {
		t.Setenv(v, "")
	}
}

// runCLI runs the muster command line in-process and returns what it
// printed and its exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// dataDirFor writes what "muster serve" leaves in its data directory for
// srv: api.addr, admin.token and ca.pem.
func dataDirFor(t *testing.T, srv *httptest.Server, token string) string {
	t.Helper()
	dir := t.TempDir()
	addr := strings.TrimPrefix(srv.URL, "https://")
	writeFile(t, filepath.Join(dir, "api.addr"), addr+"\n")
	writeFile(t, filepath.Join(dir, "admin.token"), token+"\n")
	writeFile(t, filepath.Join(dir, "ca.pem"), string(certPEM(srv.Certificate())))
	return dir
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeServer answers fixed responses by "METHOD path", for tests of how the
// CLI prints answers it cannot easily provoke from the real API.
func fakeServer(t *testing.T, routes map[string]func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.Method+" "+r.URL.Path]; ok {
			h(w, r)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":"not_found","message":"no route"}`))
	}))
	// Tests provoke untrusted handshakes on purpose; keep them out of the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
