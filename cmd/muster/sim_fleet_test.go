package main

import (
	"strings"
	"testing"
)

// TestSimFleetBadFlags checks that muster sim fleet refuses bad settings
// before it manufactures anything: no server is running, so reaching the
// server at all would fail differently.
func TestSimFleetBadFlags(t *testing.T) {
	isolateEnv(t)
	base := []string{"sim", "fleet", "--factory", "acme", "--model", "m", "--data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--devices", "0"}, "--devices 0: want at least 1"},
		{[]string{"--rate", "-1"}, "--rate -1: want a non-negative number"},
		{[]string{"--qos", "2"}, "--qos 2: want 0 or 1"},
		{[]string{"--serial-format", "SN-1"}, `--serial-format "SN-1" has no %d`},
		{[]string{"--local-addrs", "127.0.0.2,nope"}, `--local-addrs: "nope" is not an IP address`},
		{[]string{"--attacks", "teleport"}, "teleport"},
		// Nothing to reach: the data directory has no device.addr.
		{nil, "no --server, and no device.addr in"},
	} {
		_, stderr, code := runCLI(t, append(base, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("sim fleet %v: code %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
	_, stderr, code := runCLI(t, "sim", "fleet", "--model", "m")
	if code != 1 || !strings.Contains(stderr, `required flag(s) "factory" not set`) {
		t.Errorf("no --factory: code %d, stderr %q", code, stderr)
	}
}
