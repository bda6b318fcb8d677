package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestRouteTable checks the invariants the rest of the package relies on.
func TestRouteTable(t *testing.T) {
	names, patterns := map[string]bool{}, map[string]bool{}
	for _, rt := range routes() {
		key := rt.method + " " + rt.pattern
		if names[rt.name] || patterns[key] {
			t.Errorf("route %s (%s) is declared twice", rt.name, key)
		}
		names[rt.name], patterns[key] = true, true
		if rt.summary == "" || rt.status == 0 || rt.serve == nil {
			t.Errorf("route %s lacks a summary, a status or a handler", rt.name)
		}
		if !strings.HasPrefix(rt.pattern, "/v1/") {
			t.Errorf("route %s is outside /v1/", rt.name)
		}
		takesBody := rt.method == http.MethodPost || rt.method == http.MethodPatch || rt.method == http.MethodPut
		if (rt.in != nil) != takesBody {
			t.Errorf("route %s: %s with request body type %v", rt.name, rt.method, rt.in)
		}
		if (rt.out == nil) != (rt.status == http.StatusNoContent) {
			t.Errorf("route %s: status %d with response type %v", rt.name, rt.status, rt.out)
		}
		want := int64(0)
		switch {
		case rt.name == "importAdvisories":
			want = advisoryBodyLimit
		case rt.name == "importIntelFeed":
			want = intelBodyLimit
		case rt.stream: // rows are bounded one by one instead
		case rt.in != nil && strings.HasPrefix(rt.pattern, "/v1/devices"):
			want = 1 << 20
		case rt.in != nil:
			want = 64 << 10
		}
		if got := rt.bodyLimit(); got != want {
			t.Errorf("route %s: body limit %d, want %d", rt.name, got, want)
		}
		if rt.markdown {
			if _, ok := rt.out.MethodByName("Markdown"); !ok {
				t.Errorf("route %s offers Markdown but %v has no Markdown method", rt.name, rt.out)
			}
		}
	}
}
