package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/store"
)

// regionsAccess and regionsContractPermissions transcribe this feature's rows of
// docs/api-contract.md (see rbac_test.go).
var (
	regionsAccess = map[string]string{
		"createRegion": "admin operator",
		"listRegions":  "admin operator auditor",
		"getRegion":    "admin operator auditor",
		"updateRegion": "admin operator",
		"deleteRegion": "admin operator",
		"drainRegion":  "admin operator",
	}
	regionsContractPermissions = map[Permission]string{
		PermRegionsRead:   "admin operator auditor",
		PermRegionsManage: "admin operator",
	}
)

// regionsFixture prepares the target of one RBAC call of a region route:
// a fresh region for the routes that name one. ok is false for other
// routes.
func regionsFixture(t *testing.T, h *harness, rt route) (path string, body any, ok bool) {
	t.Helper()
	if _, mine := regionsAccess[rt.name]; !mine {
		return "", nil, false
	}
	name := fmt.Sprintf("rbac-%d", h.serial.Add(1))
	g := map[string]any{"name": name, "provisionUrl": "https://" + name + ".example:9443", "mqttUrl": "mqtts://" + name + ".example:8883",
		"probeUrl": "https://" + name + ".example:9443/v1/probe", "weight": 1}
	switch rt.name {
	case "createRegion":
		return rt.pattern, g, true
	case "listRegions":
		return rt.pattern, nil, true
	}
	if err := h.st.CreateRegion(context.Background(), &store.Region{Name: name, ProvisionURL: "https://r.example", MQTTURL: "mqtts://r.example",
		ProbeURL: "https://r.example/v1/probe", Weight: 1, Status: store.RegionEnabled}, "test/setup"); err != nil {
		t.Fatal(err)
	}
	path = strings.Replace(rt.pattern, "{name}", name, 1)
	switch rt.name {
	case "updateRegion":
		body = map[string]any{"weight": 2}
	case "drainRegion":
		// Another enabled region to move devices to.
		if err := h.st.CreateRegion(context.Background(), &store.Region{Name: name + "-b", ProvisionURL: "https://r.example", MQTTURL: "mqtts://r.example",
			ProbeURL: "https://r.example/v1/probe", Weight: 1, Status: store.RegionEnabled}, "test/setup"); err != nil {
			t.Fatal(err)
		}
		body = map[string]any{"batch": 10}
	}
	return path, body, true
}
