package main

import (
	"strings"
	"testing"
)

// TestDevicesCount counts through the real API: the filter flags of
// devices list, both output formats, a manufacturer's scope, and bad input.
func TestDevicesCount(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	cli(t, dir, "factories", "add", "acme", "--models", "sensor-x", "--serial-pattern", "SN-[0-9]{4}")
	for _, serial := range []string{"SN-0001", "SN-0002", "SN-0003"} {
		cli(t, dir, "devices", "create", "--factory", "acme", "--model", "sensor-x", "--serial", serial, "--tag", "pilot", "--attr", "fw=1")
	}
	cli(t, dir, "devices", "create", "--factory", "other", "--model", "sensor-y", "--serial", "X-1", "--attr", "fw=1")

	if out := cli(t, dir, "devices", "count"); out != "4 devices\n" {
		t.Fatalf("devices count = %q, want \"4 devices\\n\"", out)
	}
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, 4},
		{[]string{"--model", "sensor-x"}, 3},
		{[]string{"--factory", "other"}, 1},
		{[]string{"--attr", "fw=1"}, 4},
		{[]string{"--attr", "fw=1", "--tag", "pilot", "--serial", "SN-000"}, 3},
		{[]string{"--state", "manufactured", "--model", "sensor-y"}, 1},
		{[]string{"--state", "active"}, 0},
	} {
		got := cliJSON[struct {
			Count *int64 `json:"count"`
		}](t, dir, append([]string{"devices", "count"}, c.args...)...)
		if got.Count == nil || *got.Count != c.want {
			t.Errorf("devices count %v -o json = %v, want {\"count\": %d}", c.args, got.Count, c.want)
		}
	}

	// A manufacturer token counts its own factory's devices only.
	tok := cliJSON[struct {
		Secret string `json:"secret"`
	}](t, dir, "tokens", "create", "--role", "manufacturer", "--factory", "acme", "--name", "acme-line")
	if out := cli(t, dir, "--token", tok.Secret, "devices", "count"); out != "3 devices\n" {
		t.Errorf("manufacturer's count = %q, want \"3 devices\\n\"", out)
	}
	if _, stderr, code := runCLI(t, "--data-dir", dir, "--token", tok.Secret, "devices", "count", "--factory", "other"); code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Errorf("manufacturer counting another factory: exit %d, stderr %q", code, stderr)
	}

	// Bad input fails with the server's or the flag parser's reason.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--state", "actve"}, "bad_query"},
		{[]string{"--attr", "fw"}, "attr"},
		{[]string{"--limit", "5"}, "unknown flag"},
	} {
		stdout, stderr, code := runCLI(t, append([]string{"--data-dir", dir, "devices", "count"}, c.args...)...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("devices count %v: exit %d, stdout %q, stderr %q; want a failure naming %q", c.args, code, stdout, stderr, c.want)
		}
	}
}
