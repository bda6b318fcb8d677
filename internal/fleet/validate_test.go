package fleet

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func validDevice() *Device {
	return &Device{
		Identity:  Identity{Serial: "SN-0001", Model: "sensor-x", Factory: "acme"},
		Lifecycle: Lifecycle{State: StateManufactured},
	}
}

func TestValidateAcceptsMinimalAndFull(t *testing.T) {
	if err := Validate(validDevice()); err != nil {
		t.Fatal(err)
	}
	d := validDevice()
	lat, lon := 52.5, 13.4
	d.Manufacturing.BOM = []byte(goodBOM)
	d.Inventory = Inventory{Location: Location{Site: "berlin-1", Lat: &lat, Lon: &lon}, Groups: []string{"eu"}, Tags: []string{"pilot"}}
	d.Provisioning.Security.KeyStorage = KeyStorageTPM
	d.Compliance = []ComplianceItem{{Standard: "ETSI EN 303 645", Status: "compliant"}}
	d.Attributes = map[string]string{"color": "red"}
	if err := Validate(d); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := map[string]struct {
		mut   func(d *Device)
		field string
	}{
		"no serial":      {func(d *Device) { d.Identity.Serial = "" }, "identity.serial"},
		"serial spaces":  {func(d *Device) { d.Identity.Serial = "SN 1" }, "identity.serial"},
		"long model":     {func(d *Device) { d.Identity.Model = strings.Repeat("m", 200) }, "identity.model"},
		"no factory":     {func(d *Device) { d.Identity.Factory = "" }, "identity.factory"},
		"bad batch":      {func(d *Device) { d.Identity.Batch = "-x" }, "identity.batch"},
		"bad state":      {func(d *Device) { d.Lifecycle.State = "flying" }, "lifecycle.state"},
		"bad bom":        {func(d *Device) { d.Manufacturing.BOM = []byte(`{"bomFormat":"x"}`) }, "manufacturing.bom"},
		"key storage":    {func(d *Device) { d.Provisioning.Security.KeyStorage = "usb-stick" }, "provisioning.security.keyStorage"},
		"lat range":      {func(d *Device) { v := 91.0; w := 0.0; d.Inventory.Location.Lat, d.Inventory.Location.Lon = &v, &w }, "inventory.location.lat"},
		"lat alone":      {func(d *Device) { v := 1.0; d.Inventory.Location.Lat = &v }, "inventory.location"},
		"group":          {func(d *Device) { d.Inventory.Groups = []string{"a b"} }, "inventory.groups"},
		"attr key":       {func(d *Device) { d.Attributes = map[string]string{"": "x"} }, "attributes"},
		"compliance":     {func(d *Device) { d.Compliance = []ComplianceItem{{Standard: "x", Status: "fine"}} }, "compliance[0].status"},
		"qc test":        {func(d *Device) { d.Manufacturing.QC = []QCResult{{Result: "pass"}} }, "manufacturing.qc[0].test"},
		"maintenance":    {func(d *Device) { d.Maintenance = []MaintenanceItem{{}} }, "maintenance[0].problem"},
		"too many lists": {func(d *Device) { d.Inventory.Tags = make([]string, MaxListLen+1) }, "inventory.tags"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			d := validDevice()
			c.mut(d)
			var fe *FieldError
			if err := Validate(d); !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("err = %v, want field %s", err, c.field)
			}
		})
	}
}

func TestValidateRecords(t *testing.T) {
	if ValidateWipe(WipeAttestation{Method: "crypto-erase"}) == nil {
		t.Error("wipe without who accepted")
	}
	if ValidateWipe(WipeAttestation{Method: "crypto-erase", By: "tech-7"}) != nil {
		t.Error("valid wipe refused")
	}
	if ValidateDisposal(Disposal{Method: "landfill"}) == nil {
		t.Error("unknown disposal method accepted")
	}
	if ValidateTest(TestResult{Test: "rf"}) == nil {
		t.Error("test without result accepted")
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	a := NewID("dev_", validTime(1))
	b := NewID("dev_", validTime(2))
	if !(a < b) || !strings.HasPrefix(a, "dev_") || len(a) != 4+26 {
		t.Fatalf("ids %s %s", a, b)
	}
}

// TestNewIDMonotonicWithinMillisecond: ids made in the same millisecond
// still sort in the order they were made, so "newest first" lists hold for
// records made back to back.
func TestNewIDMonotonicWithinMillisecond(t *testing.T) {
	now := validTime(3)
	prev := NewID("job_", now)
	for range 1000 {
		id := NewID("job_", now)
		if id <= prev {
			t.Fatalf("%s made after %s in the same millisecond sorts before it", id, prev)
		}
		prev = id
	}
	if later := NewID("job_", now.Add(time.Millisecond)); later <= prev {
		t.Fatalf("id of the next millisecond %s sorts before %s", later, prev)
	}
}

func TestIncrementCarries(t *testing.T) {
	n := []byte{0x01, 0xff, 0xff}
	increment(n)
	if !bytes.Equal(n, []byte{0x02, 0x00, 0x00}) {
		t.Fatalf("increment = %x", n)
	}
}

func validTime(sec int64) time.Time { return time.Unix(1_800_000_000+sec, 0) }
