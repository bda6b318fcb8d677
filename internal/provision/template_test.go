package provision

import (
	"errors"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestParseTemplateErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ doc, field string }{
		{`name: ""`, "name"},
		{"name: t\napproval: sometimes", "approval"},
		{"name: t\nreprovisioning: maybe", "reprovisioning"},
		{"name: t\nparameters: [{name: a, type: float}]", "parameters[0].type"},
		{"name: t\nparameters: [{name: a, type: enum}]", "parameters[0].values"},
		{"name: t\nparameters: [{name: a, type: int, default: x}]", "parameters[0].default"},
		{"name: t\nparameters: [{name: a, type: string}, {name: a, type: string}]", "parameters[1].name"},
		{"name: t\ndevice: {attributes: {x: '{{param.nope}}'}}", "device.attributes.x"},
		{"name: t\ndevice: {groups: ['{{device.owner}}']}", "device.groups[0]"},
		{"name: t\ncertificate: {validity: 800d, maxValidity: 30d}", "certificate.validity"},
		{"name: t\ncertificate: {keyTypes: [dsa]}", "certificate.keyTypes[0]"},
		{"name: t\napproval: hook", "hook"},
		{"name: t\nhook: {url: 'ftp://x'}", "hook.url"},
		{"name: t\nrateLimit: {burst: 0, every: 1s}", "rateLimit"},
	} {
		_, err := ParseTemplate([]byte(tc.doc))
		var fe *fleet.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%q: error %v, want one naming %s", tc.doc, err, tc.field)
		}
	}
	if _, err := ParseTemplate([]byte("name: t\nnonsense: 1")); err == nil {
		t.Error("an unknown field was accepted")
	}
}

func TestTemplateDefaultsAndRendering(t *testing.T) {
	_, err := ParseTemplate([]byte(`{"name":"t","parameters":[{"name":"site","type":"string"},{"name":"n","type":"int","default":3}],
		"device":{"attributes":{"where":"{{ param.site }}/{{device.serial}}","n":"{{param.n}}"},"groups":["g-{{param.missing_is_empty}}"]}}`))
	if err == nil {
		t.Fatal("a reference to an undeclared parameter was accepted")
	}
	tmpl, err := ParseTemplate([]byte(`{"name":"t","parameters":[{"name":"site","type":"string"},{"name":"n","type":"int","default":3}],
		"device":{"attributes":{"where":"{{ param.site }}/{{device.serial}}","n":"{{param.n}}"},"groups":["{{param.site}}"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Approval != ApprovalAuto || tmpl.Reprovisioning != ReprovisionMigrate || tmpl.Certificate.Validity.String() != "365d" {
		t.Errorf("defaults: %+v", tmpl)
	}
	params, err := tmpl.resolveParameters(map[string]any{"site": "{{device.id}}"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := tmpl.render(renderScope{params: params, device: map[string]string{"id": "dev_1", "serial": "SN-1"}})
	// A parameter's value is never rendered again: no injection.
	if r.Attributes["where"] != "{{device.id}}/SN-1" || r.Attributes["n"] != "3" || r.Groups[0] != "{{device.id}}" {
		t.Errorf("rendered %+v", r)
	}
	if _, err := tmpl.resolveParameters(map[string]any{"n": 1.5}, nil); err == nil {
		t.Error("a fraction was accepted for an int parameter")
	}
	if _, err := tmpl.resolveParameters(map[string]any{"other": "x"}, nil); err == nil {
		t.Error("an undeclared parameter was accepted")
	}
}
