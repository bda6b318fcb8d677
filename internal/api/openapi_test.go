package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPICoversRoutes checks that the document is valid JSON, OpenAPI
// 3.0, and has an operation for every route of the table and every pattern
// registered on the mux, with its method, permission and parameters, and
// that every $ref resolves.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := newHarness(t)
	w := h.do(request{method: "GET", path: "/v1/openapi.json"})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}

	table := routes()
	for _, rt := range table {
		op, ok := doc.Paths[rt.pattern][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s (%s %s) is missing from the document", rt.name, rt.method, rt.pattern)
			continue
		}
		if op["operationId"] != rt.name {
			t.Errorf("%s %s: operationId %v, want %s", rt.method, rt.pattern, op["operationId"], rt.name)
		}
		if rt.perm != PermPublic && rt.perm != PermAnyToken && op["x-muster-permission"] != string(rt.perm) {
			t.Errorf("%s: x-muster-permission %v, want %s", rt.name, op["x-muster-permission"], rt.perm)
		}
		params, _ := op["parameters"].([]any)
		for _, want := range append(pathParams(rt.pattern), paramNames(rt.params())...) {
			if !hasParam(params, want) {
				t.Errorf("%s: parameter %s is not documented", rt.name, want)
			}
		}
		if (rt.in != nil) != (op["requestBody"] != nil) {
			t.Errorf("%s: request body documented %v, route takes one %v", rt.name, op["requestBody"] != nil, rt.in != nil)
		}
	}
	if len(h.srv.patterns) != len(table) {
		t.Errorf("mux has %d patterns, the table %d routes", len(h.srv.patterns), len(table))
	}
	for _, p := range h.srv.patterns {
		method, path, _ := strings.Cut(p, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("mux pattern %q is missing from the document", p)
		}
	}
	ops := 0
	for _, m := range doc.Paths {
		ops += len(m)
	}
	if ops != len(table) {
		t.Errorf("document has %d operations, the table %d routes", ops, len(table))
	}

	for _, name := range []string{"Device", "DeviceInput", "DevicePatch", "Error", "Event", "Token", "Passport",
		"StateRequest", "DecommissionRequest", "Disposal", "TokenRequest", "TokenCreated", "DevicePage", "Principal"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("component schema %s is missing", name)
		}
	}
	var raw any
	_ = json.Unmarshal(w.Body.Bytes(), &raw)
	walkRefs(raw, func(ref string) {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if ok {
			if _, ok := doc.Components.Schemas[name]; !ok {
				t.Errorf("$ref %s does not resolve", ref)
			}
		} else if ref != "#/components/responses/Error" {
			t.Errorf("unexpected $ref %s", ref)
		}
	})
}

// TestOpenAPIDeviceSchema spot-checks that schemas follow the Go types.
func TestOpenAPIDeviceSchema(t *testing.T) {
	raw, err := openAPIDocument(routes())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	props := func(name string) map[string]any {
		return schemas[name].(map[string]any)["properties"].(map[string]any)
	}
	dev := props("Device")
	for _, f := range []string{"id", "version", "identity", "manufacturing", "lifecycle", "endOfLife", "attributes"} {
		if dev[f] == nil {
			t.Errorf("Device lacks %s", f)
		}
	}
	in := props("DeviceInput")
	for _, f := range []string{"id", "version", "lifecycle", "endOfLife", "createdAt"} {
		if in[f] != nil {
			t.Errorf("DeviceInput has server-owned field %s", f)
		}
	}
	state := props("Lifecycle")["state"].(map[string]any)
	if enum, _ := state["enum"].([]any); len(enum) != 11 {
		t.Errorf("lifecycle.state enum = %v", state["enum"])
	}
	if props("Token")["hash"] != nil {
		t.Errorf("Token schema exposes the hash")
	}
	if props("Error")["allowed"] == nil || props("Error")["code"] == nil {
		t.Errorf("Error schema = %v", props("Error"))
	}
}

func paramNames(ps []queryParam) []string {
	var names []string
	for _, p := range ps {
		names = append(names, p.name)
	}
	return names
}

func hasParam(params []any, name string) bool {
	for _, p := range params {
		if m, ok := p.(map[string]any); ok && m["name"] == name {
			return true
		}
	}
	return false
}

func walkRefs(v any, fn func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "$ref" {
				fn(s)
			}
			walkRefs(c, fn)
		}
	case []any:
		for _, c := range x {
			walkRefs(c, fn)
		}
	}
}

// TestOpenAPIStreamedContent: a route documents JSON lines only where it
// streams them. A job upload streams its manifest in but answers one JSON
// object; a batch streams both ways; job results stream out.
func TestOpenAPIStreamedContent(t *testing.T) {
	raw, err := openAPIDocument(routes())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]any `json:"content"`
			} `json:"requestBody"`
			Responses map[string]struct {
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, method, status, answer string
		manifest                     bool
	}{
		{"/v1/jobs", "post", "201", "application/json", true},
		{"/v1/factories/{name}/batches", "post", "200", "application/x-ndjson", true},
		{"/v1/jobs/{id}/results", "get", "200", "application/x-ndjson", false},
	} {
		op := doc.Paths[c.path][c.method]
		if got := op.Responses[c.status].Content; len(got) != 1 || got[c.answer] == nil {
			t.Errorf("%s %s answers %v, want only %s", c.method, c.path, got, c.answer)
		}
		if _, csv := op.RequestBody.Content["text/csv"]; csv != c.manifest {
			t.Errorf("%s %s takes a CSV manifest: %v, want %v", c.method, c.path, csv, c.manifest)
		}
	}
}
