package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
)

// These tests run the CLI against a fake server, for behaviour that does
// not depend on the real API's logic: output shapes, exit codes, the
// update command's read-modify-write and completion. api_test.go runs the
// CLI against the real API.

func TestReportError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"invalid transition", &client.APIError{Status: 409, Code: "invalid_transition", Message: "cannot move a manufactured device to active: allowed next states are pending, provisioned, decommissioned", Allowed: []string{"pending", "provisioned", "decommissioned"}},
			"Error: cannot move a manufactured device to active: allowed next states are pending, provisioned, decommissioned (code invalid_transition)\nAllowed states: pending, provisioned, decommissioned\n"},
		{"final state", fmt.Errorf("wrapped: %w", &client.APIError{Status: 409, Code: "invalid_transition", Message: "disposed is final"}),
			"Error: disposed is final (code invalid_transition)\nAllowed states: none (the current state is final)\n"},
		{"field", &client.APIError{Status: 400, Code: "validation_failed", Message: "identity.serial: is required", Field: "identity.serial"},
			"Error: identity.serial: is required (code validation_failed, field identity.serial)\n"},
		{"unauthorized", &client.APIError{Status: 401, Code: "unauthorized", Message: "unknown token"},
			"Error: unknown token (code unauthorized)\nHint: the token was not accepted; pass a valid one with --token or MUSTER_TOKEN (the server's first admin token is in <data-dir>/admin.token)\n"},
		{"not the API", &client.APIError{Status: 502, Message: "Bad Gateway"}, "Error: Bad Gateway (HTTP 502)\n"},
		{"plain", errors.New("boom"), "Error: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if code := reportError(&b, tt.err); code != 1 {
				t.Fatalf("code = %d", code)
			}
			if b.String() != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", b.String(), tt.want)
			}
		})
	}
	var b strings.Builder
	if code := reportError(&b, &exitError{code: 1}); code != 1 || b.Len() != 0 {
		t.Fatalf("exitError: code %d, printed %q", code, b.String())
	}
}

func TestVerifyBrokenExitsNonZero(t *testing.T) {
	isolateEnv(t)
	srv := fakeServer(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/devices/dev_1/history/verify": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"ok":false,"events":5,"break":{"seq":3,"reason":"event content does not match its hash"}}`)
		},
		"GET /v1/audit-log/verify": func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"ok":true,"events":2}`)
		},
	})
	dir := dataDirFor(t, srv, "mst_x")
	stdout, stderr, code := runCLI(t, "--data-dir", dir, "devices", "verify", "dev_1")
	if code != 1 || stdout != "history BROKEN at event 3: event content does not match its hash\n" || stderr != "" {
		t.Fatalf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, _, code = runCLI(t, "--data-dir", dir, "devices", "verify", "dev_1", "-o", "json")
	var v client.Verification
	if code != 1 || json.Unmarshal([]byte(stdout), &v) != nil || v.OK || v.Break.Seq != 3 {
		t.Fatalf("json: code %d, stdout %q", code, stdout)
	}
	stdout, _, code = runCLI(t, "--data-dir", dir, "audit-log", "verify")
	if code != 0 || stdout != "audit log intact: 2 events\n" {
		t.Fatalf("audit-log verify: code %d, stdout %q", code, stdout)
	}
}

// TestListAllStreamsPages checks that --all follows every page and that
// -o json prints the API's list envelope whether or not it followed pages.
func TestListAllStreamsPages(t *testing.T) {
	isolateEnv(t)
	const total = 1203 // three pages at the client's page size
	fetches := 0
	srv := fakeServer(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/devices": func(w http.ResponseWriter, r *http.Request) {
			fetches++
			q := r.URL.Query()
			if q.Get("state") != "active" || q.Get("attr") != "site=lyon" {
				t.Errorf("query %q lacks the filter", r.URL.RawQuery)
			}
			limit, _ := strconv.Atoi(q.Get("limit"))
			if limit == 0 {
				limit = 100
			}
			start, _ := strconv.Atoi(q.Get("cursor"))
			var page client.Page[client.Device]
			for i := start; i < total && i < start+limit; i++ {
				d := client.Device{ID: fmt.Sprintf("dev_%04d", i)}
				d.Identity.Serial = fmt.Sprintf("SN-%04d", i)
				d.Lifecycle.State = client.StateActive
				page.Items = append(page.Items, d)
			}
			if start+limit < total {
				page.NextCursor = strconv.Itoa(start + limit)
			}
			_ = json.NewEncoder(w).Encode(page)
		},
	})
	dir := dataDirFor(t, srv, "mst_x")
	args := []string{"--data-dir", dir, "devices", "list", "--state", "active", "--attr", "site=lyon"}

	stdout, stderr, code := runCLI(t, append(args, "--all")...)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != total+1 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[total], "SN-1202") {
		t.Fatalf("table --all: code %d, %d lines, stderr %q", code, len(lines), stderr)
	}

	stdout, _, code = runCLI(t, append(args, "--all", "-o", "json")...)
	var all client.Page[client.Device]
	if err := json.Unmarshal([]byte(stdout), &all); err != nil || code != 0 || len(all.Items) != total || all.NextCursor != "" {
		t.Fatalf("json --all: code %d, err %v, %d items", code, err, len(all.Items))
	}

	fetches = 0
	stdout, stderr, code = runCLI(t, append(args, "--limit", "2", "-o", "json")...)
	var page client.Page[client.Device]
	if err := json.Unmarshal([]byte(stdout), &page); err != nil || code != 0 || len(page.Items) != 2 || page.NextCursor != "2" || fetches != 1 {
		t.Fatalf("one page: code %d, err %v, page %+v, fetches %d, stderr %q", code, err, page, fetches, stderr)
	}
	_, stderr, _ = runCLI(t, append(args, "--limit", "2")...)
	if !strings.Contains(stderr, "--cursor 2") {
		t.Fatalf("table page: stderr %q does not say how to continue", stderr)
	}

	stdout, _, code = runCLI(t, "--data-dir", dir, "devices", "list", "--state", "active", "--attr", "site=lyon", "--serial", "none", "--limit", "1", "-o", "json")
	if code != 0 || !json.Valid([]byte(stdout)) {
		t.Fatalf("json page is not JSON: %q", stdout)
	}

	if _, stderr, code := runCLI(t, append(args, "--all", "--limit", "5")...); code != 1 || !strings.Contains(stderr, "none of the others can be") {
		t.Fatalf("--all with --limit: code %d, stderr %q", code, stderr)
	}
}

// TestUpdateEditsCurrentSection checks the read-modify-write of field flags:
// the inventory sent is the device's current one with the flag applied,
// guarded by the version read.
func TestUpdateEditsCurrentSection(t *testing.T) {
	isolateEnv(t)
	current := client.Device{ID: "dev_1", Version: 7}
	current.Inventory = client.Inventory{Owner: "old", Groups: []string{"g1"}, Tags: []string{"keep"}}
	current.Provisioning.Firmware = []client.FirmwareVersion{{Component: "modem", Version: "1.0", SBOMRef: "sbom-1"}, {Component: "app", Version: "3"}}
	var ifMatch string
	var patch map[string]json.RawMessage
	srv := fakeServer(t, map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/devices/dev_1": func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(current)
		},
		"PATCH /v1/devices/dev_1": func(w http.ResponseWriter, r *http.Request) {
			ifMatch = r.Header.Get("If-Match")
			patch = nil
			_ = json.NewDecoder(r.Body).Decode(&patch)
			_ = json.NewEncoder(w).Encode(current)
		},
	})
	dir := dataDirFor(t, srv, "mst_x")

	_, stderr, code := runCLI(t, "--data-dir", dir, "devices", "update", "dev_1", "--owner", "acme", "--group", "a", "--group", "b",
		"--lat", "45.75", "--lon", "4.85", "--firmware", "modem=2.0", "--attr", "color=red", "--unset-attr", "legacy")
	if code != 0 {
		t.Fatalf("update: code %d, stderr %q", code, stderr)
	}
	if ifMatch != "7" {
		t.Errorf("If-Match = %q, want the version read (7)", ifMatch)
	}
	var inv client.Inventory
	_ = json.Unmarshal(patch["inventory"], &inv)
	if inv.Owner != "acme" || strings.Join(inv.Groups, ",") != "a,b" || strings.Join(inv.Tags, ",") != "keep" || *inv.Location.Lat != 45.75 {
		t.Errorf("inventory sent = %s", patch["inventory"])
	}
	var prov client.Provisioning
	_ = json.Unmarshal(patch["provisioning"], &prov)
	if len(prov.Firmware) != 2 || prov.Firmware[0].Version != "2.0" || prov.Firmware[0].SBOMRef != "" || prov.Firmware[1].Version != "3" {
		t.Errorf("provisioning sent = %s", patch["provisioning"])
	}
	if string(patch["attributes"]) != `{"color":"red","legacy":null}` {
		t.Errorf("attributes sent = %s", patch["attributes"])
	}

	// Attributes alone need no read: they merge on the server.
	ifMatch = "unset"
	if _, stderr, code := runCLI(t, "--data-dir", dir, "devices", "update", "dev_1", "--attr", "a=b"); code != 0 || ifMatch != "" {
		t.Fatalf("attr-only update: code %d, If-Match %q, stderr %q", code, ifMatch, stderr)
	}
	if _, ok := patch["inventory"]; ok {
		t.Errorf("attr-only update sent inventory: %v", patch)
	}
	// --if-version wins over the version read.
	if _, _, code := runCLI(t, "--data-dir", dir, "devices", "update", "dev_1", "--owner", "x", "--if-version", "5"); code != 0 || ifMatch != "5" {
		t.Fatalf("--if-version: code %d, If-Match %q", code, ifMatch)
	}
	if _, stderr, code := runCLI(t, "--data-dir", dir, "devices", "update", "dev_1"); code != 1 || !strings.Contains(stderr, "nothing to update") {
		t.Fatalf("empty update: code %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, "--data-dir", dir, "devices", "update", "dev_1", "--lat", "1"); code != 1 || !strings.Contains(stderr, "together") {
		t.Fatalf("lat without lon: code %d, stderr %q", code, stderr)
	}
}

func TestCompletion(t *testing.T) {
	isolateEnv(t)
	stdout, _, code := runCLI(t, "__complete", "devices", "state", "dev_1", "")
	if code != 0 || !strings.Contains(stdout, "quarantined\n") || !strings.Contains(stdout, "decommissioned\n") {
		t.Fatalf("state completion: code %d, %q", code, stdout)
	}
	stdout, _, _ = runCLI(t, "__complete", "devices", "list", "--state", "")
	if !strings.Contains(stdout, "active\n") {
		t.Fatalf("--state completion: %q", stdout)
	}
	stdout, _, _ = runCLI(t, "__complete", "whoami", "-o", "")
	if !strings.Contains(stdout, "table\t") || !strings.Contains(stdout, "json\t") {
		t.Fatalf("-o completion: %q", stdout)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := runCLI(t, "completion", shell)
		if code != 0 || len(stdout) < 100 {
			t.Fatalf("completion %s: code %d, %d bytes, stderr %q", shell, code, len(stdout), stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	isolateEnv(t)
	_, stderr, code := runCLI(t, "devices", "qc", "dev_1", "--token", "x", "--test", "t")
	if code != 1 || !strings.Contains(stderr, `required flag(s) "result" not set`) {
		t.Fatalf("missing flag: code %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCLI(t, "devices", "get", "--token", "x")
	if code != 1 || !strings.Contains(stderr, "accepts 1 arg") || !strings.Contains(stderr, "Run 'muster devices get --help' for usage.") {
		t.Fatalf("missing argument: code %d, stderr %q", code, stderr)
	}
}
