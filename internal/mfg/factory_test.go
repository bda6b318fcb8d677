package mfg

import (
	"errors"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestFactoryValidate(t *testing.T) {
	good := Factory{Name: "acme-shenzhen", Models: []string{"M1", "M2"}, SerialPattern: `SN-[0-9]{6}`, CAMode: CAManaged}
	cases := []struct {
		name   string
		change func(*Factory)
		field  string // "" when valid
	}{
		{"valid", func(*Factory) {}, ""},
		{"external CA", func(f *Factory) { f.CAMode = CAExternal }, ""},
		{"no name", func(f *Factory) { f.Name = "" }, "name"},
		{"bad name", func(f *Factory) { f.Name = "acme shenzhen" }, "name"},
		{"no models", func(f *Factory) { f.Models = nil }, "models"},
		{"bad model", func(f *Factory) { f.Models = []string{"M 1"} }, "models"},
		{"repeated model", func(f *Factory) { f.Models = []string{"M1", "M1"} }, "models"},
		{"no pattern", func(f *Factory) { f.SerialPattern = " " }, "serialPattern"},
		{"bad pattern", func(f *Factory) { f.SerialPattern = `SN-[0-9` }, "serialPattern"},
		{"pattern escaping its anchors", func(f *Factory) { f.SerialPattern = `a)|(b` }, "serialPattern"},
		{"unknown CA mode", func(f *Factory) { f.CAMode = "hsm" }, "caMode"},
		{"empty CA mode", func(f *Factory) { f.CAMode = "" }, "caMode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := good
			f.Models = append([]string(nil), good.Models...)
			c.change(&f)
			err := f.Validate()
			var fe *fleet.FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
				t.Fatalf("Validate = %v, want a FieldError on %s", err, c.field)
			}
		})
	}
}

func TestNewFactory(t *testing.T) {
	models := []string{"M1"}
	f, err := NewFactory(Factory{Name: "acme", Models: models, SerialPattern: "SN[0-9]+"})
	if err != nil {
		t.Fatal(err)
	}
	if f.CAMode != CAManaged || f.serial == nil {
		t.Errorf("CAMode %q, compiled %v", f.CAMode, f.serial != nil)
	}
	models[0] = "changed"
	if f.Models[0] != "M1" {
		t.Error("NewFactory shares the caller's models slice")
	}
	if _, err := NewFactory(Factory{Name: "acme", Models: models, SerialPattern: "("}); err == nil {
		t.Error("NewFactory accepted a bad pattern")
	}
}

func TestCheckRow(t *testing.T) {
	cases := []struct {
		pattern, model, serial string
		field                  string // "" when in scope
	}{
		{`SN-[0-9]{6}`, "M1", "SN-123456", ""},
		{`SN-[0-9]{6}`, "M3", "SN-123456", "model"},
		{`SN-[0-9]{6}`, "m1", "SN-123456", "model"}, // models are case-sensitive
		{`SN-[0-9]{6}`, "M1", "SN-12345", "serial"},
		{`SN-[0-9]{6}`, "M1", "xSN-123456", "serial"}, // anchored at the start
		{`SN-[0-9]{6}`, "M1", "SN-1234567", "serial"}, // and at the end
		{`SN-[0-9]{6}`, "M1", "SN-123456\n", "serial"},
		{`a|ab`, "M1", "ab", ""}, // the whole serial, not the leftmost match
		{`a|ab`, "M1", "abc", "serial"},
		{`(?i)sn-[0-9]+`, "M2", "Sn-42", ""},
		{`\Qa.b`, "M1", "a.b", ""}, // an unterminated \Q does not eat the anchor
		{`\Qa.b`, "M1", "axb", "serial"},
		{`\Qa.b`, "M1", "a.bc", "serial"},
		{`(?m)^SN$`, "M1", "SN\nSN", "serial"},
	}
	for _, c := range cases {
		spec := Factory{Name: "acme", Models: []string{"M1", "M2"}, SerialPattern: c.pattern}
		compiled, err := NewFactory(spec)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		// A Factory literal (never passed to NewFactory) must agree.
		for _, f := range []*Factory{compiled, &spec} {
			err := f.CheckRow(c.model, c.serial)
			var se *ScopeError
			switch {
			case c.field == "" && err != nil:
				t.Errorf("CheckRow(%q, %q) with %q: %v", c.model, c.serial, c.pattern, err)
			case c.field != "" && (!errors.As(err, &se) || se.Field != c.field):
				t.Errorf("CheckRow(%q, %q) with %q = %v, want a ScopeError on %s", c.model, c.serial, c.pattern, err, c.field)
			}
		}
	}
}

func TestCheckRowMessages(t *testing.T) {
	f, err := NewFactory(Factory{Name: "acme", Models: []string{"M1", "M2"}, SerialPattern: `SN-\d+`})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckRow("M9", "SN-1"); err == nil || !strings.Contains(err.Error(), "its models: M1, M2") {
		t.Errorf("model error %v does not list the factory's models", err)
	}
	if err := f.CheckRow("M1", "X"); err == nil || !strings.Contains(err.Error(), `SN-\d+`) {
		t.Errorf("serial error %v does not show the pattern", err)
	}
}

func TestCheckRowBadLiteral(t *testing.T) {
	f := &Factory{Name: "acme", Models: []string{"M1"}, SerialPattern: "("}
	err := f.CheckRow("M1", "x")
	var se *ScopeError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("err = %v, want a pattern error that is not a ScopeError", err)
	}
}
