package fleet

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const passportBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "components":[
  {"type":"device","name":"mainboard","version":"r3","components":[
    {"type":"firmware","name":"bootloader","version":"2.1"}]},
  {"type":"device","name":"radio","group":"acme"}]}`

// passportDevice is a device that went through its whole life, with the
// history events that record it.
func passportDevice(t *testing.T) (*Device, []Event) {
	t.Helper()
	at := func(h int) time.Time { return time.Date(2025, 3, 1, h, 0, 0, 0, time.UTC) }
	decommissioned := at(9)
	d := &Device{
		ID: "dev_1", Version: 7, CreatedAt: at(1), UpdatedAt: at(10),
		Identity: Identity{Serial: "SN-1", Model: "gw-100", Factory: "f1", Batch: "b7"},
		Manufacturing: Manufacturing{
			BOM:      json.RawMessage(passportBOM),
			QC:       []QCResult{{Test: "burn-in", Result: "pass", At: at(2), Measurements: map[string]float64{"temp": 41.5}}, {Test: "rf", Result: "fail", At: at(2)}},
			Assembly: []AssemblyStep{{Step: "solder", Station: "s1", At: at(1)}},
		},
		Provisioning: Provisioning{Firmware: []FirmwareVersion{{Component: "os", Version: "1.2.3"}}},
		Inventory:    Inventory{Owner: "acme | ops", Groups: []string{"north"}},
		Lifecycle: Lifecycle{State: StateDisposed, StateChangedAt: at(10), Changes: []StateChange{
			{To: StateManufactured, At: at(1), Actor: "manufacturer/line1"},
			{From: StateManufactured, To: StatePending, At: at(3), Actor: "operator/ann"},
			{From: StatePending, To: StateDecommissioned, At: at(9), Actor: "operator/ann", Reason: "end of contract"},
			{From: StateDecommissioned, To: StateDisposed, At: at(10), Actor: "operator/ann"},
		}},
		Maintenance: []MaintenanceItem{{Problem: "fan noise", Action: "replaced fan", At: at(5)}},
		Compliance:  []ComplianceItem{{Standard: "ETSI EN 303 645", Status: "compliant"}},
		EndOfLife: EndOfLife{
			DecommissionReason: "end of contract", DecommissionedAt: &decommissioned,
			Wipe:     &WipeAttestation{Method: "crypto-erase", By: "tech-1", At: at(9)},
			Disposal: &Disposal{Method: "recycle", Facility: "EcoPlant", At: at(10)},
		},
		Attributes: map[string]string{"color": "red"},
	}
	var events []Event
	for i, typ := range []string{EventCreated, EventQC, EventStateChanged, EventDecommission, EventDisposal} {
		e := Event{Subject: d.ID, Type: typ, Actor: "operator/ann", At: at(i + 1), Data: json.RawMessage(`{"n":1}`)}
		var prev *Event
		if len(events) > 0 {
			prev = &events[len(events)-1]
		}
		e.Seal(prev)
		events = append(events, e)
	}
	return d, events
}

func TestBuildPassport(t *testing.T) {
	d, events := passportDevice(t)
	p := BuildPassport(d, events)

	if p.DeviceID != "dev_1" || p.DeviceVersion != 7 || p.PassportVersion != PassportVersion {
		t.Errorf("header = %q v%d format %q", p.DeviceID, p.DeviceVersion, p.PassportVersion)
	}
	bom := p.Manufacturing.BOM
	if !bom.Present || bom.Count != 3 || bom.ByType["device"] != 2 || bom.ByType["firmware"] != 1 || bom.Error != "" {
		t.Errorf("BOM summary = %+v", bom)
	}
	if bom.Components[1].Name != "bootloader" {
		t.Errorf("components not flattened depth-first: %+v", bom.Components)
	}
	if p.Manufacturing.QCPassed != 1 || p.Manufacturing.QCFailed != 1 {
		t.Errorf("QC counts = %d passed, %d failed", p.Manufacturing.QCPassed, p.Manufacturing.QCFailed)
	}
	if len(p.Lifecycle.Timeline) != 4 || p.Lifecycle.State != StateDisposed || !p.Lifecycle.RegisteredAt.Equal(d.CreatedAt) {
		t.Errorf("lifecycle = %+v", p.Lifecycle)
	}
	h := p.History
	if !h.Verified || h.Break != nil || h.Events != 5 || h.Head != events[4].Hash || len(h.Items) != 5 {
		t.Errorf("history = verified %v break %v events %d head %q", h.Verified, h.Break, h.Events, h.Head)
	}
	for i, e := range h.Items {
		if e.Seq != int64(i+1) {
			t.Errorf("history item %d has seq %d: events must keep chain order", i, e.Seq)
		}
	}

	// The JSON form has every section, and lists are [] rather than null.
	raw, err := json.Marshal(BuildPassport(&Device{ID: "dev_2"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"qc":[]`, `"timeline":[]`, `"items":[]`, `"components":[]`, `"maintenance":[]`, `"verified":true`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("empty passport JSON lacks %s: %s", want, raw)
		}
	}
}

func TestBuildPassportReportsTamperedHistory(t *testing.T) {
	d, events := passportDevice(t)
	events[2].Data = json.RawMessage(`{"n":2}`)
	p := BuildPassport(d, events)
	if p.History.Verified || p.History.Break == nil || p.History.Break.Seq != 3 {
		t.Fatalf("tampered history: verified %v break %+v, want break at 3", p.History.Verified, p.History.Break)
	}
	if md := p.Markdown(); !strings.Contains(md, "NOT VERIFIED") || !strings.Contains(md, "FAILED at event 3") {
		t.Errorf("Markdown does not report the break:\n%s", md)
	}
}

func TestBuildPassportUnparsableBOM(t *testing.T) {
	d, events := passportDevice(t)
	d.Manufacturing.BOM = json.RawMessage(`{"bomFormat":"SPDX"}`)
	p := BuildPassport(d, events)
	if !p.Manufacturing.BOM.Present || p.Manufacturing.BOM.Error == "" || p.Manufacturing.BOM.Count != 0 {
		t.Errorf("BOM summary = %+v, want present with an error", p.Manufacturing.BOM)
	}
}

func TestPassportMarkdown(t *testing.T) {
	d, events := passportDevice(t)
	md := BuildPassport(d, events).Markdown()

	// Sections appear in lifecycle order.
	sections := []string{"# Device passport", "## 1. Identity", "## 2. Manufacturing", "### Bill of materials",
		"### Quality control", "### Assembly", "## 3. Provisioning", "## 4. Inventory", "## 5. Lifecycle",
		"## 6. Maintenance", "## 7. Compliance", "## 8. End of life", "## 9. Attributes", "## 10. History"}
	last := -1
	for _, s := range sections {
		i := strings.Index(md, s)
		if i < 0 {
			t.Fatalf("Markdown lacks %q:\n%s", s, md)
		}
		if i < last {
			t.Errorf("section %q is out of lifecycle order", s)
		}
		last = i
	}
	for _, want := range []string{
		"- **Serial:** SN-1",
		"3 components (2 device, 1 firmware).",
		"| firmware |  | bootloader | 2.1 |  |",
		"2 results: 1 passed, 1 failed.",
		"temp=41.5",
		"| 2025-03-01T09:00:00Z | pending | decommissioned | operator/ann | end of contract |",
		"crypto-erase by tech-1 at 2025-03-01T09:00:00Z",
		"- **Facility:** EcoPlant",
		"Verification: OK, 5 events chained by SHA-256.",
		events[4].Hash,
		"- **Owner:** acme \\| ops", // user text cannot break a table
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestPassportMarkdownEscapesUserText(t *testing.T) {
	d := &Device{ID: "dev_x", Identity: Identity{Serial: "A", Model: "m"},
		Maintenance: []MaintenanceItem{{Problem: "line1\n| <script>alert(1)</script> | # not a heading"}}}
	md := BuildPassport(d, nil).Markdown()
	if strings.Contains(md, "<script>") {
		t.Errorf("HTML was not escaped:\n%s", md)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "|") && strings.Contains(line, "line1") {
			// Six columns have seven unescaped bars.
			if strings.Count(line, "|")-strings.Count(line, `\|`) != 7 {
				t.Errorf("maintenance row has the wrong number of cells: %q", line)
			}
			return
		}
	}
	t.Errorf("maintenance row missing:\n%s", md)
}
