package gateway

import "testing"

func TestAllowed(t *testing.T) {
	op := Principal{Role: RoleOperational, DeviceID: "dev_a1", Groups: []string{"north", "bad/group"}}
	quar := Principal{Role: RoleQuarantined, DeviceID: "dev_a1"}
	birth := Principal{Role: RoleBirth}
	unsafe := Principal{Role: RoleOperational, DeviceID: "dev_a1/+"}
	tests := []struct {
		name  string
		p     Principal
		topic string
		a     Action
		want  bool
	}{
		// Operational: its own subtree, both ways.
		{"own publish", op, "devices/dev_a1/telemetry", Publish, true},
		{"own deep publish", op, "devices/dev_a1/a/b/c", Publish, true},
		{"own subscribe all", op, "devices/dev_a1/#", Subscribe, true},
		{"own subscribe plus", op, "devices/dev_a1/+/state", Subscribe, true},
		{"own root only", op, "devices/dev_a1", Publish, false},
		{"other device publish", op, "devices/dev_b2/telemetry", Publish, false},
		{"other device subscribe", op, "devices/dev_b2/#", Subscribe, false},
		{"prefix look-alike", op, "devices/dev_a10/telemetry", Publish, false},
		{"wildcard device", op, "devices/+/telemetry", Subscribe, false},
		{"wildcard devices", op, "devices/#", Subscribe, false},
		{"hash", op, "#", Subscribe, false},
		{"plus plus hash", op, "+/+/#", Subscribe, false},
		{"plus own", op, "+/dev_a1/#", Subscribe, false},
		{"wildcard in publish", op, "devices/dev_a1/+", Publish, false},
		{"hash not last", op, "devices/dev_a1/#/x", Subscribe, false},
		{"partial wildcard", op, "devices/dev_a1/te+", Subscribe, false},
		{"sys", op, "$SYS/#", Subscribe, false},
		{"sys broker", op, "$SYS/broker/clients/connected", Subscribe, false},
		{"shared subscription", op, "$share/g/devices/dev_a1/#", Subscribe, false},
		{"empty level", op, "devices//dev_a1/x", Publish, false},
		{"leading slash", op, "/devices/dev_a1/x", Publish, false},
		{"trailing slash", op, "devices/dev_a1/x/", Publish, false},
		{"dot dot", op, "devices/dev_a1/../dev_b2/x", Publish, false},
		{"dot", op, "devices/dev_a1/./x", Publish, false},
		{"unicode look-alike id", op, "devices/dev_а1/x", Publish, false}, // Cyrillic а
		{"unicode level", op, "devices/dev_a1/tëlemetry", Publish, false},
		{"space", op, "devices/dev_a1/a b", Publish, false},
		{"control byte", op, "devices/dev_a1/a\x00", Publish, false},
		{"empty", op, "", Subscribe, false},
		{"broadcast subscribe", op, "fleet/north/#", Subscribe, true},
		{"broadcast subtopic", op, "fleet/north/firmware", Subscribe, true},
		{"broadcast publish", op, "fleet/north/firmware", Publish, false},
		{"other group", op, "fleet/south/#", Subscribe, false},
		{"group wildcard", op, "fleet/+/#", Subscribe, false},
		{"unsafe group ignored", op, "fleet/bad/group/#", Subscribe, false},
		{"provisioning", op, "$muster/provision/t1/request", Publish, false},
		{"unsafe device id", unsafe, "devices/dev_a1/+/x", Subscribe, false},

		// Quarantined: only the quarantine subtree.
		{"quarantine publish", quar, "devices/dev_a1/quarantine/status", Publish, true},
		{"quarantine subscribe", quar, "devices/dev_a1/quarantine/#", Subscribe, true},
		{"quarantine telemetry", quar, "devices/dev_a1/telemetry", Publish, false},
		{"quarantine own all", quar, "devices/dev_a1/#", Subscribe, false},
		{"quarantine broadcast", quar, "fleet/north/#", Subscribe, false},
		{"quarantine other", quar, "devices/dev_b2/quarantine/#", Subscribe, false},
		{"quarantine wildcard", quar, "devices/dev_a1/+/#", Subscribe, false},

		// Birth: only the provisioning topics, literally.
		{"birth request", birth, "$muster/provision/t1/request", Publish, true},
		{"birth accepted", birth, "$muster/provision/t1/accepted", Subscribe, true},
		{"birth rejected", birth, "$muster/provision/t1/rejected", Subscribe, true},
		{"birth subscribe request", birth, "$muster/provision/t1/request", Subscribe, false},
		{"birth publish accepted", birth, "$muster/provision/t1/accepted", Publish, false},
		{"birth wildcard template", birth, "$muster/provision/+/accepted", Subscribe, false},
		{"birth hash", birth, "$muster/provision/#", Subscribe, false},
		{"birth devices", birth, "devices/dev_a1/x", Publish, false},
		{"birth sys", birth, "$SYS/#", Subscribe, false},
		{"birth longer", birth, "$muster/provision/t1/request/x", Publish, false},

		// No role: nothing.
		{"none", Principal{}, "devices/dev_a1/x", Publish, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.p, tt.topic, tt.a); got != tt.want {
				t.Errorf("Allowed(%v %q, %q, %v) = %v, want %v", tt.p.Role, tt.p.DeviceID, tt.topic, tt.a, got, tt.want)
			}
		})
	}
}
