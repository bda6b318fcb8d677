package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// contractAccess is the permission table of docs/api-contract.md,
// transcribed by hand per route, so this test checks the code against the
// contract rather than against itself. "public" needs no token.
var contractAccess = map[string]string{
	"health":              "public",
	"openapi":             "public",
	"whoami":              "admin operator manufacturer installer auditor",
	"createDevice":        "admin operator manufacturer",
	"listDevices":         "admin operator manufacturer installer auditor",
	"countDevices":        "admin operator manufacturer installer auditor",
	"getDevice":           "admin operator manufacturer installer auditor",
	"patchDevice":         "admin operator manufacturer",
	"changeState":         "admin operator",
	"addQC":               "admin operator manufacturer",
	"addTest":             "admin operator installer",
	"addMaintenance":      "admin operator installer",
	"decommission":        "admin operator",
	"dispose":             "admin operator",
	"deviceComponents":    "admin operator manufacturer installer auditor",
	"getDeviceMetrics":    "admin operator manufacturer installer auditor",
	"sendDeviceCommand":   "admin operator",
	"rotateDevice":        "admin operator",
	"deviceHistory":       "admin operator manufacturer auditor",
	"verifyDeviceHistory": "admin operator manufacturer auditor",
	"devicePassport":      "admin operator manufacturer installer auditor",
	"createToken":         "admin",
	"listTokens":          "admin",
	"revokeToken":         "admin",
	"auditLog":            "admin auditor",
	"verifyAuditLog":      "admin auditor",

	"deviceCertificates":       "admin operator manufacturer installer auditor",
	"revokeDeviceCertificates": "admin operator",
	"getCertificate":           "admin operator manufacturer installer auditor",
	"revokeCertificate":        "admin operator",

	"createTemplate": "admin operator",
	"listTemplates":  "admin operator auditor",
	"getTemplate":    "admin operator auditor",
	"updateTemplate": "admin operator",
	"deleteTemplate": "admin operator",
	"listApprovals":  "admin operator",
	"approve":        "admin operator",
	"reject":         "admin operator",
	"createClaim":    "admin operator installer",

	"createFactory":    "admin operator",
	"listFactories":    "admin operator manufacturer auditor",
	"getFactory":       "admin operator manufacturer auditor",
	"factoryChallenge": "admin operator",
	"submitBatch":      "admin operator manufacturer",
	"getBatch":         "admin operator manufacturer auditor",
	"listCAs":          "admin operator auditor",
	"caChains":         "admin operator auditor",
	"rotateCA":         "admin",
}

// rbacFixture prepares a fresh target for one call of a route: the path
// (pattern with {id} filled in) and a body that succeeds for an allowed
// caller. Devices are in factory f1, the manufacturer's own, so scoping never
// masks a permission decision.
func rbacFixture(t *testing.T, h *harness, rt route) (path string, body any, watch string) {
	t.Helper()
	if path, body, ok := regionsFixture(t, h, rt); ok {
		return path, body, ""
	}
	if path, body, ok := auditFixture(t, h, rt); ok {
		return path, body, ""
	}
	if path, body, ok := jobsFixture(t, h, rt); ok {
		return path, body, ""
	}
	if path, body, ok := detectFixture(t, h, rt); ok {
		return path, body, ""
	}
	var id string
	switch rt.name {
	case "createDevice":
		return rt.pattern, h.input(factory1), ""
	case "createToken":
		return rt.pattern, map[string]any{"name": "ci", "role": "auditor", "expiresIn": "24h"}, ""
	case "revokeToken":
		_, hash := NewTokenSecret()
		tok := &store.Token{Name: "victim", Role: "auditor", Hash: hash}
		if err := h.st.CreateToken(context.Background(), tok, "test/setup"); err != nil {
			t.Fatal(err)
		}
		id = tok.ID
	case "dispose":
		id = h.deviceIn(factory1, fleet.StateDecommissioned).ID
		body = map[string]any{"method": "recycle", "facility": "EcoPlant"}
	case "createFactory":
		return rt.pattern, map[string]any{"name": fmt.Sprintf("plant-%d", h.serial.Add(1)), "models": []string{"m1"}, "serialPattern": "S-[0-9]+"}, ""
	case "factoryChallenge":
		return strings.Replace(rt.pattern, "{name}", fmt.Sprintf("maker-%d", h.serial.Add(1)), 1), map[string]any{}, ""
	case "getFactory":
		return strings.Replace(rt.pattern, "{name}", factory1, 1), nil, ""
	case "submitBatch":
		row := fmt.Sprintf(`{"serial":"SN-%05d","model":%q}`, h.serial.Add(1), testModel)
		return strings.Replace(rt.pattern, "{name}", factory1, 1) + "?keyMode=mint&format=jsonl", row, ""
	case "getBatch":
		b := &store.Batch{ID: fmt.Sprintf("B-%d", h.serial.Add(1)), Factory: factory1, KeyMode: "csr"}
		if err := h.st.CreateBatch(context.Background(), b, "test/setup"); err != nil {
			t.Fatal(err)
		}
		return strings.NewReplacer("{name}", factory1, "{batch}", b.ID).Replace(rt.pattern), nil, ""
	case "rotateCA":
		return rt.pattern, map[string]any{"purpose": "operational", "overlap": "1h"}, ""
	case "createTemplate":
		return rt.pattern, map[string]any{"name": fmt.Sprintf("t-%d", h.serial.Add(1))}, ""
	case "getTemplate", "updateTemplate", "deleteTemplate":
		name := h.template()
		if rt.method == http.MethodPut {
			body = map[string]any{"name": name, "approval": "manual"}
		}
		return strings.Replace(rt.pattern, "{name}", name, 1), body, ""
	case "approve", "reject":
		return rt.pattern, map[string]any{"ids": []string{h.pendingRequest()}, "reason": "checked"}, ""
	case "createClaim":
		return rt.pattern, map[string]any{"factory": factory1, "model": testModel, "serial": fmt.Sprintf("CLAIM-%d", h.serial.Add(1))}, ""
	case "revokeDeviceCertificates":
		d := h.newDevice(factory1)
		h.issued(d)
		id, body = d.ID, map[string]any{"reason": "keyCompromise"}
	case "getCertificate", "revokeCertificate":
		caID, serial := h.issued(h.newDevice(factory1))
		if rt.method == http.MethodPost {
			body = map[string]any{"reason": "superseded"}
		}
		return strings.NewReplacer("{caId}", caID, "{serial}", serial).Replace(rt.pattern), body, ""
	default:
		if strings.Contains(rt.pattern, "{id}") {
			d := h.newDevice(factory1)
			id = d.ID
		}
		switch rt.name {
		case "patchDevice":
			body = map[string]any{"attributes": map[string]any{"color": "blue"}}
		case "changeState":
			body = map[string]any{"state": "pending", "reason": "ready"}
		case "addQC":
			body = map[string]any{"test": "burn-in", "result": "pass"}
		case "addTest":
			body = map[string]any{"test": "connectivity", "result": "pass"}
		case "addMaintenance":
			body = map[string]any{"problem": "fan noise", "action": "replaced fan"}
		case "decommission":
			body = decommissionBody()
		case "sendDeviceCommand":
			body = map[string]any{"topic": "reboot", "payload": "{}"}
		case "rotateDevice":
			body = map[string]any{"reason": "test"}
		}
	}
	if strings.Contains(rt.pattern, "{id}") && strings.HasPrefix(rt.pattern, "/v1/devices/") {
		watch = id
	}
	return strings.Replace(rt.pattern, "{id}", id, 1), body, watch
}

// TestRBAC walks every route of the route table for every role, without a
// token and with a revoked and an expired token, and checks allow or deny
// exactly as the contract says. Denied calls must write nothing.
func TestRBAC(t *testing.T) {
	h := newHarness(t)
	callers := []string{"admin", "operator", "manufacturer", "installer", "auditor", callerNone, revoked, expired}
	for _, rt := range routes() {
		access, ok := contractAccess[rt.name]
		if !ok {
			t.Errorf("route %s is not in contractAccess: add it from docs/api-contract.md", rt.name)
			continue
		}
		allowed := strings.Fields(access)
		for _, caller := range callers {
			name := caller
			if name == "" {
				name = "no-token"
			}
			t.Run(rt.name+"/"+name, func(t *testing.T) {
				h := h.with(t)
				path, body, watch := rbacFixture(t, h, rt)
				before := h.snapshot(watch)
				w := h.do(request{caller: caller, method: rt.method, path: path, body: body})
				switch {
				case access == "public" || slices.Contains(allowed, caller):
					if w.Code != rt.status {
						t.Fatalf("%s %s as %s: status %d, want %d: %s", rt.method, path, name, w.Code, rt.status, w.Body)
					}
				case caller == callerNone || caller == revoked || caller == expired:
					if e := errorOf(t, w); w.Code != http.StatusUnauthorized || e.Code != codeUnauthorized {
						t.Fatalf("%s %s as %s: %d %s, want 401 unauthorized", rt.method, path, name, w.Code, w.Body)
					}
					if w.Header().Get("WWW-Authenticate") == "" {
						t.Errorf("401 without WWW-Authenticate")
					}
					h.assertUnchanged(t, before, watch)
				default:
					if e := errorOf(t, w); w.Code != http.StatusForbidden || e.Code != codeForbidden {
						t.Fatalf("%s %s as %s: %d %s, want 403 forbidden", rt.method, path, name, w.Code, w.Body)
					}
					h.assertUnchanged(t, before, watch)
				}
			})
		}
	}
	for name := range contractAccess {
		if !slices.ContainsFunc(routes(), func(rt route) bool { return rt.name == name }) {
			t.Errorf("contractAccess names route %s, which the route table lacks", name)
		}
	}
}

// TestRolePermissionsMatchContract checks the permission table role by
// role against the contract's matrix.
func TestRolePermissionsMatchContract(t *testing.T) {
	contract := map[Permission]string{
		PermDevicesRead:         "admin operator manufacturer installer auditor",
		PermDevicesCreate:       "admin operator manufacturer",
		PermDevicesUpdate:       "admin operator manufacturer",
		PermDevicesState:        "admin operator",
		PermDevicesMaintain:     "admin operator installer",
		PermDevicesDecommission: "admin operator",
		PermDevicesCommand:      "admin operator",
		PermHistoryRead:         "admin operator manufacturer auditor",
		PermTokensManage:        "admin",
		PermAuditRead:           "admin auditor",
		PermCertsRevoke:         "admin operator",
		PermFactoriesRead:       "admin operator manufacturer auditor",
		PermFactoriesManage:     "admin operator",
		PermBatchesSubmit:       "admin operator manufacturer",
		PermCAsRead:             "admin operator auditor",
		PermCAsManage:           "admin",
		PermAnyToken:            "admin operator manufacturer installer auditor",
	}
	for _, m := range featureContractPermissions {
		maps.Copy(contract, m)
	}
	for perm, roles := range contract {
		for _, r := range Roles() {
			if got, want := r.Can(perm), slices.Contains(strings.Fields(roles), string(r)); got != want {
				t.Errorf("%s.Can(%s) = %v, want %v", r, perm, got, want)
			}
		}
		if Role("root").Can(perm) {
			t.Errorf("an unknown role has %s", perm)
		}
	}
}
