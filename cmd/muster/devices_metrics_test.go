package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevicesMetrics runs the command against a fake API: it joins the
// devices command when the gateway routes are wired.
func TestDevicesMetrics(t *testing.T) {
	isolateEnv(t)
	srv := fakeServer(t, map[string]func(w http.ResponseWriter, r *http.Request){
		"GET /v1/devices/dev_1/metrics": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("from") == "" || r.URL.Query().Get("to") == "" {
				t.Errorf("query = %s, want from and to", r.URL.RawQuery)
			}
			_, _ = w.Write([]byte(`{"deviceId":"dev_1","presence":{"connected":true,"node":"n1","remote":"10.0.0.1:5000",
				"connectedAt":"2026-01-02T03:04:05Z","lastSeen":"2026-01-02T03:04:05Z"},
				"windows":[{"start":"2026-01-02T03:00:00Z","seconds":300,"connects":1,"messagesIn":7,
				"disconnects":{"revoked":1,"client":2},"topics":["devices/dev_1/t"],"sourceIps":["10.0.0.1"]}]}`))
		},
	})
	dir := dataDirFor(t, srv, "secret")
	t.Setenv("MUSTER_DATA_DIR", dir)
	t.Setenv("MUSTER_CA_FILE", filepath.Join(dir, "ca.pem"))
	g := &globals{root: newRootCmd()}
	g.dataDir = dir
	cmd := newDevicesMetricsCmd(g)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"dev_1", "--since", "2h"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"connected to n1 from 10.0.0.1:5000", "client:2,revoked:1", "10.0.0.1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	cmd.SetArgs([]string{"dev_1", "--since", "1h", "--until", "2h"})
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Fatalf("err = %v, want a --since complaint", err)
	}
}
