package main

import (
	"strings"
	"testing"
)

// TestReadmeRegions runs the README's regions block verbatim: three nodes
// serving three regions on one SQLite file, latency proxies in front of
// their probes, 100 simulated devices provisioning through the 40 ms
// region, a drain of the 10 ms one. The block starts its own nodes.
func TestReadmeRegions(t *testing.T) {
	out, _ := runOwnNodesBlock(t, "regions", []string{"bash", "jq", "openssl", "awk"},
		[]string{"regions/eu.log", "regions/us.log", "regions/ap.log"})
	for _, want := range []string{
		// Every device lands in the fastest region ...
		"ap: 0 devices\neu: 100 devices\nus: 0 devices",
		// ... and moves to the next best when it is drained.
		"Region eu is draining: 100 devices moved, 0 remain.",
		"ap: 0 devices (enabled)\neu: 0 devices (draining)\nus: 100 devices (enabled)",
		"eu -> us (drain)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("regions block output lacks %q:\n%s", want, out)
		}
	}
}
