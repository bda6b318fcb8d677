package main

import (
	"strings"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// TestRegionsCLI drives every regions command against the real API.
func TestRegionsCLI(t *testing.T) {
	isolateEnv(t)
	dir, st := startAPIStore(t)
	r := cliJSON[client.Region](t, dir, "regions", "add", "eu-west", "--provision-url", "https://eu.example:9443",
		"--mqtt-url", "mqtts://eu.example:8883", "--location", "48.85,2.35", "--weight", "3")
	if r.ProbeURL != "https://eu.example:9443/v1/probe" || r.Location == nil || r.Location.Lat != 48.85 || r.Weight != 3 || r.Status != client.RegionEnabled {
		t.Fatalf("regions add: %+v", r)
	}
	cli(t, dir, "regions", "add", "us-east", "--provision-url", "https://us.example:9443", "--mqtt-url", "mqtts://us.example:8883")
	out := cli(t, dir, "regions", "list")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "eu-west") || !strings.Contains(out, "48.85,2.35") || !strings.Contains(out, "us-east") {
		t.Fatalf("regions list: %s", out)
	}
	up := cliJSON[client.Region](t, dir, "regions", "update", "eu-west", "--probe-url", "https://probe.example/v1/probe", "--clear-location")
	if up.ProbeURL != "https://probe.example/v1/probe" || up.Location != nil || up.Weight != 3 || up.Version != 2 {
		t.Fatalf("regions update: %+v", up)
	}
	if r := cliJSON[client.Region](t, dir, "regions", "disable", "us-east"); r.Status != client.RegionDisabled {
		t.Fatalf("regions disable: %+v", r)
	}
	if r := cliJSON[client.Region](t, dir, "regions", "enable", "us-east"); r.Status != client.RegionEnabled {
		t.Fatalf("regions enable: %+v", r)
	}
	if out := cli(t, dir, "regions", "drain", "us-east"); !strings.Contains(out, "Region us-east is draining: 0 devices moved, 0 remain.") {
		t.Fatalf("regions drain: %s", out)
	}
	if out := cli(t, dir, "regions", "get", "us-east"); !strings.Contains(out, "draining") {
		t.Fatalf("regions get: %s", out)
	}
	cli(t, dir, "regions", "delete", "us-east")

	// A region with its own CA; deleting it retires the CA, and adding
	// the name again makes a new one.
	ap := cliJSON[client.Region](t, dir, "regions", "add", "ap", "--provision-url", "https://ap.example:9443", "--mqtt-url", "mqtts://ap.example:8883", "--ca")
	if ap.CAID == "" {
		t.Fatalf("regions add --ca: no CA in %+v", ap)
	}
	if out := cli(t, dir, "regions", "delete", "ap"); !strings.Contains(out, "Region ap deleted.") {
		t.Fatalf("regions delete: %s", out)
	}
	if old, err := st.GetCA(t.Context(), ap.CAID); err != nil || old.Status != store.CARetiring {
		t.Fatalf("CA of the deleted region: %+v, %v; want retiring", old, err)
	}
	if again := cliJSON[client.Region](t, dir, "regions", "add", "ap", "--provision-url", "https://ap.example:9443", "--mqtt-url", "mqtts://ap.example:8883", "--ca"); again.CAID == "" || again.CAID == ap.CAID {
		t.Fatalf("re-added ap has CA %q, want a new one (not %s)", again.CAID, ap.CAID)
	}

	// A region that is a device's home is not deleted; the error says
	// how many and what to do.
	if err := st.CreateDevice(t.Context(), &fleet.Device{Identity: fleet.Identity{Factory: "f", Model: "m1", Serial: "S-1"},
		Attributes: map[string]string{region.AttrHome: "eu-west"}}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "--data-dir", dir, "regions", "delete", "eu-west"); code == 0 ||
		!strings.Contains(stderr, "home to 1 device;") || !strings.Contains(stderr, "muster regions drain eu-west") {
		t.Errorf("regions delete of a home region: exit %d, stderr %q", code, stderr)
	}
	if out := cli(t, dir, "regions", "get", "eu-west"); !strings.Contains(out, "eu-west") {
		t.Errorf("a refused delete removed eu-west: %s", out)
	}

	// Mistakes are caught, with what to do.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"regions", "add", "x", "--provision-url", "https://x", "--mqtt-url", "mqtts://x", "--location", "north"}, "LAT,LON"},
		{[]string{"regions", "add", "x", "--provision-url", "http://x", "--mqtt-url", "mqtts://x"}, "provisionUrl"},
		{[]string{"regions", "get", "us-east"}, "no region"},
		{[]string{"regions", "drain", "eu-west", "--batch", "5000"}, "batch"},
	} {
		_, stderr, code := runCLI(t, append([]string{"--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(strings.ToLower(stderr), strings.ToLower(tc.want)) {
			t.Errorf("%v: exit %d, stderr %q; want an error mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}
