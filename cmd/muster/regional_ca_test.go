package main

import (
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
)

// TestRegionsCACLI: --ca on add and update gives a region its own
// operational CA, shown by get; a second --ca, or --ca on an unknown
// region, fails with what to do and adds no CA.
func TestRegionsCACLI(t *testing.T) {
	isolateEnv(t)
	dir := startAPI(t)
	r := cliJSON[client.Region](t, dir, "regions", "add", "eu-west", "--provision-url", "https://eu.example:9443",
		"--mqtt-url", "mqtts://eu.example:8883", "--ca")
	if r.CAID == "" {
		t.Fatalf("regions add --ca: %+v", r)
	}
	cli(t, dir, "regions", "add", "us-east", "--provision-url", "https://us.example:9443", "--mqtt-url", "mqtts://us.example:8883")
	if out := cli(t, dir, "regions", "get", "us-east"); !strings.Contains(out, "shared operational CA") {
		t.Fatalf("regions get of a region without its CA: %s", out)
	}
	up := cliJSON[client.Region](t, dir, "regions", "update", "us-east", "--ca")
	if up.CAID == "" || up.CAID == r.CAID || up.Version != 2 {
		t.Fatalf("regions update --ca: %+v", up)
	}
	if out := cli(t, dir, "regions", "get", "us-east"); !strings.Contains(out, up.CAID) {
		t.Fatalf("regions get: %s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"regions", "update", "eu-west", "--ca"}, "own operational CA already"},
		{[]string{"regions", "update", "nowhere", "--ca"}, "nowhere"},
	} {
		_, stderr, code := runCLI(t, append([]string{"--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	if out := cli(t, dir, "ca", "list"); strings.Count(out, "regional") != 2 {
		t.Fatalf("ca list shows %d regional CAs, want 2:\n%s", strings.Count(out, "regional"), out)
	}
}
