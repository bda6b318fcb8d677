package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestBadInput sends every kind of bad request of the contract and checks
// the status, the code, the field at fault and that nothing was written:
// no device, event or token count changed and the watched device is byte
// for byte what it was.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	active := h.deviceIn(factory1, fleet.StateActive)
	other := h.newDevice(factory2)
	// A device whose current serial the duplicate case reuses.
	dupID := active.Identity
	act := "/v1/devices/" + active.ID
	oth := "/v1/devices/" + other.ID
	huge := strings.Repeat("x", deviceBodyLimit)
	badBOM := map[string]any{"bomFormat": "SPDX", "specVersion": "2.3"}

	type tc struct {
		name    string
		rq      request
		status  int
		code    string
		field   string
		allowed []fleet.State
		watch   string // device that must stay unchanged; default the active one
	}
	cases := []tc{
		// bad_json
		{name: "not json", rq: request{method: "POST", path: "/v1/devices", body: "serial=1"}, status: 400, code: codeBadJSON},
		{name: "truncated", rq: request{method: "POST", path: "/v1/devices", body: `{"identity":`}, status: 400, code: codeBadJSON},
		{name: "empty body", rq: request{method: "PATCH", path: act, body: ""}, status: 400, code: codeBadJSON},
		{name: "trailing object", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}} {"attributes":{"c":"d"}}`}, status: 400, code: codeBadJSON},
		{name: "trailing garbage", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}} xyz`}, status: 400, code: codeBadJSON},
		{name: "array body", rq: request{method: "POST", path: act + "/qc", body: `[]`}, status: 400, code: codeBadJSON},
		// unknown_field
		{name: "unknown top-level field", rq: request{method: "POST", path: "/v1/devices", body: `{"identity":{"serial":"X1","model":"m"},"colour":"red"}`}, status: 400, code: codeUnknownField, field: "colour"},
		{name: "unknown nested field", rq: request{method: "PATCH", path: act, body: `{"inventory":{"owner":"o","room":"12"}}`}, status: 400, code: codeUnknownField, field: "room"},
		{name: "server-owned field on create", rq: request{method: "POST", path: "/v1/devices", body: `{"id":"dev_x","identity":{"serial":"X1","model":"m"}}`}, status: 400, code: codeUnknownField, field: "id"},
		{name: "lifecycle on create", rq: request{method: "POST", path: "/v1/devices", body: `{"identity":{"serial":"X1","model":"m"},"lifecycle":{"state":"active"}}`}, status: 400, code: codeUnknownField, field: "lifecycle"},
		{name: "lifecycle in patch", rq: request{method: "PATCH", path: act, body: `{"lifecycle":{"state":"disposed"}}`}, status: 400, code: codeUnknownField, field: "lifecycle"},
		{name: "unknown token field", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"n","role":"admin","scopes":["all"]}`}, status: 400, code: codeUnknownField, field: "scopes"},
		// invalid_type
		{name: "number for string", rq: request{method: "POST", path: "/v1/devices", body: `{"identity":{"serial":5,"model":"m"}}`}, status: 400, code: codeInvalidType, field: "identity.serial"},
		{name: "string for list", rq: request{method: "PATCH", path: act, body: `{"inventory":{"groups":"north"}}`}, status: 400, code: codeInvalidType, field: "inventory.groups"},
		{name: "number for state", rq: request{method: "POST", path: act + "/state", body: `{"state":3}`}, status: 400, code: codeInvalidType, field: "state"},
		{name: "bad timestamp", rq: request{method: "POST", path: act + "/qc", body: `{"test":"t","result":"pass","at":"yesterday"}`}, status: 400, code: codeInvalidType},
		{name: "string attribute value", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":1}}`}, status: 400, code: codeInvalidType, field: "attributes"},
		// validation_failed
		{name: "missing serial", rq: request{method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"model": "m", "factory": "f1"}}}, status: 400, code: codeValidationFailed, field: "identity.serial"},
		{name: "missing factory", rq: request{method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"model": "m", "serial": "S"}}}, status: 400, code: codeValidationFailed, field: "identity.factory"},
		{name: "serial with space", rq: request{method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"model": "m", "serial": "S 1", "factory": "f1"}}}, status: 400, code: codeValidationFailed, field: "identity.serial"},
		{name: "latitude out of range", rq: request{method: "PATCH", path: act, body: `{"inventory":{"location":{"lat":91,"lon":0}}}`}, status: 400, code: codeValidationFailed, field: "inventory.location.lat"},
		{name: "bad compliance status", rq: request{method: "PATCH", path: act, body: `{"compliance":[{"standard":"ETSI EN 303 645","status":"maybe"}]}`}, status: 400, code: codeValidationFailed, field: "compliance[0].status"},
		{name: "serial is immutable", rq: request{method: "PATCH", path: act, body: map[string]any{"identity": map[string]any{"serial": "OTHER"}}}, status: 400, code: codeValidationFailed, field: "identity.serial"},
		{name: "factory is immutable", rq: request{method: "PATCH", path: act, body: map[string]any{"identity": map[string]any{"factory": "f9"}}}, status: 400, code: codeValidationFailed, field: "identity.factory"},
		{name: "empty patch", rq: request{method: "PATCH", path: act, body: `{}`}, status: 400, code: codeValidationFailed},
		{name: "bad If-Match", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`, header: map[string]string{"If-Match": "yesterday"}}, status: 400, code: codeValidationFailed, field: "If-Match"},
		{name: "unknown state", rq: request{method: "POST", path: act + "/state", body: `{"state":"sleeping"}`}, status: 400, code: codeValidationFailed, field: "state"},
		{name: "decommission via state", rq: request{method: "POST", path: act + "/state", body: `{"state":"decommissioned"}`}, status: 400, code: codeValidationFailed, field: "state"},
		{name: "dispose via state", rq: request{method: "POST", path: act + "/state", body: `{"state":"disposed"}`}, status: 400, code: codeValidationFailed, field: "state"},
		{name: "qc without test", rq: request{method: "POST", path: act + "/qc", body: `{"result":"pass"}`}, status: 400, code: codeValidationFailed, field: "test"},
		{name: "test without result", rq: request{method: "POST", path: act + "/tests", body: `{"test":"ping"}`}, status: 400, code: codeValidationFailed, field: "result"},
		{name: "maintenance without problem", rq: request{method: "POST", path: act + "/maintenance", body: `{"action":"rebooted"}`}, status: 400, code: codeValidationFailed, field: "problem"},
		{name: "decommission without reason", rq: request{method: "POST", path: act + "/decommission", body: map[string]any{"wipe": decommissionBody()["wipe"]}}, status: 400, code: codeValidationFailed, field: "reason"},
		{name: "decommission without wipe", rq: request{method: "POST", path: act + "/decommission", body: `{"reason":"old"}`}, status: 400, code: codeValidationFailed, field: "wipe"},
		{name: "wipe without by", rq: request{method: "POST", path: act + "/decommission", body: `{"reason":"old","wipe":{"method":"crypto-erase"}}`}, status: 400, code: codeValidationFailed, field: "wipe.by"},
		{name: "bad disposal method", rq: request{method: "POST", path: act + "/disposal", body: `{"method":"landfill"}`}, status: 400, code: codeValidationFailed, field: "method"},
		{name: "token with unknown role", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"n","role":"root"}`}, status: 400, code: codeValidationFailed, field: "role"},
		{name: "manufacturer token without factory", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"n","role":"manufacturer"}`}, status: 400, code: codeValidationFailed, field: "factory"},
		{name: "factory on operator token", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"n","role":"operator","factory":"f1"}`}, status: 400, code: codeValidationFailed, field: "factory"},
		{name: "bad token lifetime", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"n","role":"auditor","expiresIn":"forever"}`}, status: 400, code: codeValidationFailed, field: "expiresIn"},
		// invalid_bom
		{name: "invalid BOM on create", rq: request{method: "POST", path: "/v1/devices", body: map[string]any{"identity": map[string]any{"serial": "B1", "model": "m", "factory": "f1"}, "manufacturing": map[string]any{"bom": badBOM}}}, status: 400, code: codeInvalidBOM, field: "manufacturing.bom"},
		{name: "BOM component without name", rq: request{method: "PATCH", path: act, body: `{"manufacturing":{"bom":{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"device"}]}}}`}, status: 400, code: codeInvalidBOM, field: "manufacturing.bom"},
		{name: "BOM spec too old", rq: request{method: "PATCH", path: act, body: `{"manufacturing":{"bom":{"bomFormat":"CycloneDX","specVersion":"1.4"}}}`}, status: 400, code: codeInvalidBOM, field: "manufacturing.bom"},
		// bad_cursor and bad_query
		{name: "foreign cursor", rq: request{method: "GET", path: "/v1/devices?cursor=bm90LWEtY3Vyc29y"}, status: 400, code: codeBadCursor, field: "cursor"},
		{name: "unknown state filter", rq: request{method: "GET", path: "/v1/devices?state=sleeping"}, status: 400, code: codeBadQuery, field: "state"},
		{name: "limit zero", rq: request{method: "GET", path: "/v1/devices?limit=0"}, status: 400, code: codeBadQuery, field: "limit"},
		{name: "limit too big", rq: request{method: "GET", path: "/v1/devices?limit=1001"}, status: 400, code: codeBadQuery, field: "limit"},
		{name: "limit not a number", rq: request{method: "GET", path: "/v1/devices?limit=ten"}, status: 400, code: codeBadQuery, field: "limit"},
		{name: "attr without value", rq: request{method: "GET", path: "/v1/devices?attr=color"}, status: 400, code: codeBadQuery, field: "attr"},
		{name: "attr with bad key", rq: request{method: "GET", path: "/v1/devices?attr=%20x=1"}, status: 400, code: codeBadQuery, field: "attr"},
		{name: "unknown query parameter", rq: request{method: "GET", path: "/v1/devices?colour=red"}, status: 400, code: codeBadQuery, field: "colour"},
		{name: "repeated single parameter", rq: request{method: "GET", path: "/v1/devices?state=active&state=pending"}, status: 400, code: codeBadQuery, field: "state"},
		{name: "query on a route without parameters", rq: request{method: "GET", path: act + "?verbose=1"}, status: 400, code: codeBadQuery, field: "verbose"},
		{name: "unknown passport format", rq: request{method: "GET", path: act + "/passport?format=pdf"}, status: 400, code: codeBadQuery, field: "format"},
		// 401, 403, 404
		{name: "no token", rq: request{caller: callerNone, method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`}, status: 401, code: codeUnauthorized},
		{name: "revoked token", rq: request{caller: revoked, method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`}, status: 401, code: codeUnauthorized},
		{name: "expired token", rq: request{caller: expired, method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`}, status: 401, code: codeUnauthorized},
		{name: "garbage token", rq: request{caller: callerNone, method: "GET", path: act, header: map[string]string{"Authorization": "Bearer mst_nope"}}, status: 401, code: codeUnauthorized},
		{name: "basic auth", rq: request{caller: callerNone, method: "GET", path: act, header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}}, status: 401, code: codeUnauthorized},
		{name: "role without permission", rq: request{caller: "installer", method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`}, status: 403, code: codeForbidden},
		{name: "manufacturer creates for another factory", rq: request{caller: "manufacturer", method: "POST", path: "/v1/devices", body: h.input(factory2)}, status: 403, code: codeForbidden, field: "identity.factory"},
		{name: "manufacturer lists another factory", rq: request{caller: "manufacturer", method: "GET", path: "/v1/devices?factory=factory-two"}, status: 403, code: codeForbidden, field: "factory"},
		{name: "manufacturer patches another factory's device", rq: request{caller: "manufacturer", method: "PATCH", path: oth, body: `{"attributes":{"a":"b"}}`}, status: 404, code: codeNotFound, watch: other.ID},
		{name: "manufacturer with stale If-Match on another factory's device", rq: request{caller: "manufacturer", method: "PATCH", path: oth, body: `{"attributes":{"a":"b"}}`, header: map[string]string{"If-Match": "99"}}, status: 404, code: codeNotFound, watch: other.ID},
		{name: "manufacturer adds QC to another factory's device", rq: request{caller: "manufacturer", method: "POST", path: oth + "/qc", body: `{"test":"t","result":"pass"}`}, status: 404, code: codeNotFound, watch: other.ID},
		{name: "no such device", rq: request{method: "PATCH", path: "/v1/devices/dev_nope", body: `{"attributes":{"a":"b"}}`}, status: 404, code: codeNotFound},
		{name: "no such token", rq: request{method: "DELETE", path: "/v1/tokens/tok_nope"}, status: 404, code: codeNotFound},
		{name: "no such route", rq: request{method: "GET", path: "/v1/gadgets"}, status: 404, code: codeNotFound},
		{name: "method not allowed", rq: request{method: "PUT", path: act, body: `{}`}, status: 405, code: codeMethodNotAllowed},
		// 409
		{name: "duplicate serial", rq: request{method: "POST", path: "/v1/devices", body: map[string]any{"identity": dupID}}, status: 409, code: codeDuplicate, field: "identity.serial"},
		{name: "transition not allowed", rq: request{method: "POST", path: act + "/state", body: `{"state":"pending"}`}, status: 409, code: codeInvalidTransition, field: "state",
			allowed: fleet.AllowedFrom(fleet.StateActive)},
		{name: "disposal of a live device", rq: request{method: "POST", path: act + "/disposal", body: `{"method":"recycle"}`}, status: 409, code: codeInvalidTransition, field: "state",
			allowed: fleet.AllowedFrom(fleet.StateActive)},
		// 412
		{name: "stale If-Match", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`, header: map[string]string{"If-Match": `"1"`}}, status: 412, code: codeVersionMismatch},
		{name: "stale If-Match on a state change", rq: request{method: "POST", path: act + "/state", body: `{"state":"suspended"}`, header: map[string]string{"If-Match": "1"}}, status: 412, code: codeVersionMismatch},
		// 413
		{name: "device body too large", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"` + huge + `"}}`}, status: 413, code: codeBodyTooLarge},
		{name: "device body too large, chunked", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"` + huge + `"}}`, chunked: true}, status: 413, code: codeBodyTooLarge},
		{name: "token body too large", rq: request{method: "POST", path: "/v1/tokens", body: `{"name":"` + strings.Repeat("n", smallBodyLimit) + `","role":"admin"}`, chunked: true}, status: 413, code: codeBodyTooLarge},
		// 415
		{name: "text/plain", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`, header: map[string]string{"Content-Type": "text/plain"}}, status: 415, code: codeUnsupportedMedia},
		{name: "no content type", rq: request{method: "POST", path: act + "/qc", body: `{"test":"t","result":"pass"}`, header: map[string]string{"Content-Type": ""}}, status: 415, code: codeUnsupportedMedia},
		{name: "form post", rq: request{method: "POST", path: "/v1/tokens", body: "name=n&role=admin", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, status: 415, code: codeUnsupportedMedia},
		{name: "latin-1 JSON", rq: request{method: "PATCH", path: act, body: `{"attributes":{"a":"b"}}`, header: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}}, status: 415, code: codeUnsupportedMedia},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := h.with(t)
			if c.rq.caller == "" && !strings.HasPrefix(c.name, "no token") && c.rq.header["Authorization"] == "" {
				c.rq.caller = "admin"
			}
			watch := c.watch
			if watch == "" {
				watch = active.ID
			}
			before := h.snapshot(watch)
			w := h.do(c.rq)
			e := errorOf(t, w)
			if w.Code != c.status || e.Code != c.code || e.Field != c.field {
				t.Fatalf("got %d %s field %q, want %d %s field %q: %s", w.Code, e.Code, e.Field, c.status, c.code, c.field, w.Body)
			}
			if e.Message == "" {
				t.Errorf("error without a message")
			}
			if c.allowed != nil && !slices.Equal(e.Allowed, c.allowed) {
				t.Errorf("allowed = %v, want %v", e.Allowed, c.allowed)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			h.assertUnchanged(t, before, watch)
		})
	}
}

// TestInvalidTransitionFromFinalState checks that a final state answers
// with an empty allowed list rather than none.
func TestInvalidTransitionFromFinalState(t *testing.T) {
	h := newHarness(t)
	d := h.deviceIn(factory1, fleet.StateDecommissioned)
	call[*fleet.Device](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/disposal", body: `{"method":"destroy"}`}, http.StatusOK)
	before := h.snapshot(d.ID)
	w := h.do(request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/state", body: `{"state":"active"}`})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"allowed":[]`) {
		t.Fatalf("got %d %s, want 409 with allowed []", w.Code, w.Body)
	}
	h.assertUnchanged(t, before, d.ID)
}

// TestMethodNotAllowedListsAllow checks the 405 answer names the methods.
func TestMethodNotAllowedListsAllow(t *testing.T) {
	h := newHarness(t)
	w := h.do(request{caller: "admin", method: "DELETE", path: "/v1/devices"})
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status %d", w.Code)
	}
	allow := w.Header().Get("Allow")
	for _, m := range []string{"GET", "POST"} {
		if !strings.Contains(allow, m) {
			t.Errorf("Allow = %q lacks %s", allow, m)
		}
	}
}
