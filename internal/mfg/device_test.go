package mfg

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestRowDevice(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	f, err := NewFactory(Factory{Name: "acme", Models: []string{"M1", "M2"}, SerialPattern: `SN-\d{6}`})
	if err != nil {
		t.Fatal(err)
	}
	boms, err := LoadModelBOMs(map[string][]byte{"M1": []byte(otherBOM)})
	if err != nil {
		t.Fatal(err)
	}
	good := Row{Line: 7, Serial: "SN-000001", Model: "M1", HardwareRevision: "r2",
		QC:       []fleet.QCResult{{Test: "burn", Result: "pass"}},
		Assembly: []fleet.AssemblyStep{{Step: "solder"}},
		Firmware: []fleet.FirmwareVersion{{Component: "app", Version: "1.0"}}, Attributes: map[string]string{"line": "3"}}

	d, err := good.Device(f, "b-42", now, boms)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.ID, "dev_") || !d.CreatedAt.Equal(now) || d.Lifecycle.State != fleet.StateManufactured ||
		len(d.Lifecycle.Changes) != 1 || d.Lifecycle.Changes[0].To != fleet.StateManufactured {
		t.Errorf("record = %+v", d)
	}
	if id := d.Identity; id != (fleet.Identity{Serial: "SN-000001", Model: "M1", HardwareRevision: "r2", Factory: "acme", Batch: "b-42"}) {
		t.Errorf("identity = %+v", id)
	}
	if string(d.Manufacturing.BOM) != otherBOM || len(d.Manufacturing.QC) != 1 || len(d.Manufacturing.Assembly) != 1 ||
		len(d.Provisioning.Firmware) != 1 || d.Attributes["line"] != "3" {
		t.Errorf("record = %+v", d)
	}

	withBOM := good
	withBOM.BOM = []byte(goodBOM)
	withBOM.Batch = "own"
	if d, err := withBOM.Device(f, "b-42", now, boms); err != nil || string(d.Manufacturing.BOM) != goodBOM || d.Identity.Batch != "own" {
		t.Errorf("row BOM and batch: %v, %+v", err, d)
	}
	noModelBOM := good
	noModelBOM.Model = "M2"
	if d, err := noModelBOM.Device(f, "b-42", now, boms); err != nil || d.Manufacturing.BOM != nil {
		t.Errorf("model without BOM: %v, BOM %s", err, d.Manufacturing.BOM)
	}

	parseErr := parseError(7, "SN-000001", nil, "broken")
	cases := []struct {
		name   string
		change func(*Row)
		batch  string
		code   string
		field  string
	}{
		{"parse error passes through", func(r *Row) { r.Err = parseErr }, "b-42", CodeParse, ""},
		{"serial outside the pattern", func(r *Row) { r.Serial = "SN-1" }, "b-42", CodeScope, "identity.serial"},
		{"model not allowed", func(r *Row) { r.Model = "M9" }, "b-42", CodeScope, "identity.model"},
		{"no serial", func(r *Row) { r.Serial = "" }, "b-42", CodeValidation, "identity.serial"},
		{"no model", func(r *Row) { r.Model = "" }, "b-42", CodeValidation, "identity.model"},
		{"bad hardware revision", func(r *Row) { r.HardwareRevision = "rev 2" }, "b-42", CodeValidation, "identity.hardwareRevision"},
		{"bad batch id", func(r *Row) {}, "batch 42", CodeValidation, "identity.batch"},
		{"QC without result", func(r *Row) { r.QC = []fleet.QCResult{{Test: "burn"}} }, "b-42", CodeValidation, "manufacturing.qc[0].result"},
		{"bad attribute key", func(r *Row) { r.Attributes = map[string]string{"a b": "x"} }, "b-42", CodeValidation, "attributes"},
		{"invalid BOM", func(r *Row) { r.BOM = []byte(`{"bomFormat":"SPDX"}`) }, "b-42", CodeBOM, "manufacturing.bom"},
		{"BOM not JSON", func(r *Row) { r.BOM = []byte(`{`) }, "b-42", CodeBOM, "manufacturing.bom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := good
			c.change(&r)
			d, err := r.Device(f, c.batch, now, boms)
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("Device = %+v, %v; want a RowError", d, err)
			}
			if re.Code != c.code || re.Field != c.field || re.Line == 0 || re.Serial != r.Serial || re.Message == "" {
				t.Errorf("RowError = %+v, want code %s field %s", re, c.code, c.field)
			}
		})
	}
}

func TestRowDeviceUnwraps(t *testing.T) {
	f, err := NewFactory(Factory{Name: "acme", Models: []string{"M1"}, SerialPattern: `.+`})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Row{Line: 2, Serial: "S1", Model: "M2"}.Device(f, "b", time.Now(), BOMSet{})
	var se *ScopeError
	if !errors.As(err, &se) || se.Field != "model" {
		t.Errorf("err = %v, want it to unwrap to a ScopeError", err)
	}
	_, err = Row{Line: 2, Serial: "", Model: "M1"}.Device(f, "b", time.Now(), BOMSet{})
	var fe *fleet.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("err = %v, want it to unwrap to a FieldError", err)
	}
}
