package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveServer(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, given, addrFile, want string
	}{
		{"flag with scheme", "https://m.example:9443", "", "https://m.example:9443"},
		{"flag without scheme", "m.example:9443", "", "https://m.example:9443"},
		{"api.addr", "", "10.0.0.5:8443\n", "https://10.0.0.5:8443"},
		{"api.addr on all IPv4 interfaces", "", "0.0.0.0:8443", "https://127.0.0.1:8443"},
		{"api.addr on all IPv6 interfaces", "", "[::]:8443", "https://[::1]:8443"},
		{"api.addr without host", "", ":8443", "https://127.0.0.1:8443"},
		{"default", "", "", defaultServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.addrFile != "" {
				mkdir(t, d)
				writeFile(t, filepath.Join(d, addrFile), tt.addrFile)
			}
			got, err := resolveServer(tt.given, d)
			if err != nil || got != tt.want {
				t.Fatalf("resolveServer = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	bad := filepath.Join(dir, "bad")
	mkdir(t, bad)
	writeFile(t, filepath.Join(bad, addrFile), "not an address")
	if _, err := resolveServer("", bad); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Fatalf("garbage api.addr: err = %v", err)
	}
}

func TestMissingTokenMessage(t *testing.T) {
	isolateEnv(t)
	_, stderr, code := runCLI(t, "whoami", "--data-dir", t.TempDir())
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	want := "Error: no API token: pass --token, set MUSTER_TOKEN, or run on the server host with --data-dir pointing at its data directory\n"
	if stderr != want {
		t.Fatalf("stderr = %q, want %q", stderr, want)
	}
}

// TestSettingsPrecedence checks flag over environment over data directory,
// by looking at what the fake server receives.
func TestSettingsPrecedence(t *testing.T) {
	isolateEnv(t)
	var gotAuth string
	srv := fakeServer(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/whoami": func(w http.ResponseWriter, r *http.Request) {
			gotAuth = r.Header.Get("Authorization")
			_, _ = w.Write([]byte(`{"id":"tok_1","name":"bootstrap","role":"admin"}`))
		},
	})
	dir := dataDirFor(t, srv, "mst_from_file")

	// Everything from the data directory: address, token and CA.
	stdout, stderr, code := runCLI(t, "whoami", "--data-dir", dir)
	if code != 0 || gotAuth != "Bearer mst_from_file" || !strings.Contains(stdout, "bootstrap") {
		t.Fatalf("data dir: code %d, auth %q, stdout %q, stderr %q", code, gotAuth, stdout, stderr)
	}

	t.Setenv("MUSTER_DATA_DIR", dir)
	t.Setenv("MUSTER_TOKEN", "mst_from_env")
	if _, stderr, code := runCLI(t, "whoami"); code != 0 || gotAuth != "Bearer mst_from_env" {
		t.Fatalf("env: code %d, auth %q, stderr %q", code, gotAuth, stderr)
	}
	if _, stderr, code := runCLI(t, "whoami", "--token", "mst_from_flag"); code != 0 || gotAuth != "Bearer mst_from_flag" {
		t.Fatalf("flag: code %d, auth %q, stderr %q", code, gotAuth, stderr)
	}

	// Without the data directory's CA the server is not trusted, and the
	// hint says what to do.
	t.Setenv("MUSTER_DATA_DIR", t.TempDir())
	_, stderr, code = runCLI(t, "whoami", "--server", srv.URL)
	if code != 1 || !strings.Contains(stderr, "--ca-file") {
		t.Fatalf("untrusted server: code %d, stderr %q", code, stderr)
	}
	caFile := filepath.Join(dir, caFile)
	if _, stderr, code := runCLI(t, "whoami", "--server", srv.URL, "--ca-file", caFile); code != 0 {
		t.Fatalf("--ca-file: code %d, stderr %q", code, stderr)
	}
}

func TestBadOutputFormat(t *testing.T) {
	isolateEnv(t)
	_, stderr, code := runCLI(t, "whoami", "-o", "yaml", "--token", "x")
	if code != 1 || !strings.Contains(stderr, `unknown output format "yaml"`) {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

// TestDataDirTokenStaysWithItsServer: the admin token found in a data
// directory is never sent to a server the user named that is not the one
// that wrote it.
func TestDataDirTokenStaysWithItsServer(t *testing.T) {
	isolateEnv(t)
	var gotAuth string
	other := fakeServer(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/whoami": func(w http.ResponseWriter, r *http.Request) {
			gotAuth = r.Header.Get("Authorization")
			_, _ = w.Write([]byte(`{"id":"tok_1","name":"x","role":"admin"}`))
		},
	})
	local := fakeServer(t, nil)
	dir := dataDirFor(t, local, "mst_local_admin")
	caPath := filepath.Join(dir, caFile)
	_, stderr, code := runCLI(t, "whoami", "--data-dir", dir, "--server", other.URL, "--ca-file", caPath)
	if code != 1 || gotAuth != "" || !strings.Contains(stderr, "is for") {
		t.Fatalf("code %d, token sent %q, stderr %q", code, gotAuth, stderr)
	}
	// Naming the data directory's own server is fine.
	if _, stderr, code := runCLI(t, "whoami", "--data-dir", dir, "--server", local.URL); code == 1 && strings.Contains(stderr, "is for") {
		t.Fatalf("own server refused: %q", stderr)
	}
}
