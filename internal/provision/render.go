package provision

import (
	"fmt"
	"slices"
	"strings"
)

// Placeholders. A template's device strings may contain {{param.NAME}}
// (a declared parameter) and {{device.FIELD}}, where FIELD is id, serial,
// model, factory or hardwareRevision (from the device record, which the
// birth certificate named). Nothing else is substituted and nothing is
// evaluated: this is deliberately not text/template, so a parameter value
// can never inject logic, and a rendered value is never rendered again.
// There is no escape for a literal "{{": templates are configuration, and
// a value that needs braces can come in through a parameter.
var deviceFields = []string{"id", "serial", "model", "factory", "hardwareRevision"}

// renderScope is what placeholders resolve to.
type renderScope struct {
	params map[string]string
	device map[string]string
}

// placeholders splits s into literal text and references, calling ref for
// each reference (without braces, trimmed) and lit for literal text.
func placeholders(s string, lit func(string), ref func(string) error) error {
	for {
		start := strings.Index(s, "{{")
		if start < 0 {
			if strings.Contains(s, "}}") {
				return fmt.Errorf("unmatched }} in %q", s)
			}
			lit(s)
			return nil
		}
		end := strings.Index(s[start:], "}}")
		if end < 0 {
			return fmt.Errorf("unclosed {{ in %q", s)
		}
		if strings.Contains(s[:start], "}}") {
			return fmt.Errorf("unmatched }} in %q", s)
		}
		lit(s[:start])
		if err := ref(strings.TrimSpace(s[start+2 : start+end])); err != nil {
			return err
		}
		s = s[start+end+2:]
	}
}

// checkPlaceholders reports references that name no parameter or field.
func checkPlaceholders(s string, params []Parameter) error {
	return placeholders(s, func(string) {}, func(ref string) error {
		kind, name, _ := strings.Cut(ref, ".")
		switch {
		case kind == "param" && slices.ContainsFunc(params, func(p Parameter) bool { return p.Name == name }):
			return nil
		case kind == "device" && slices.Contains(deviceFields, name):
			return nil
		}
		return fmt.Errorf("{{%s}} names no declared parameter (param.NAME) or device field (device.%s)", ref, strings.Join(deviceFields, ", device."))
	})
}

// render substitutes every placeholder of s. A parameter without a value
// renders empty.
func (sc renderScope) render(s string) string {
	var b strings.Builder
	_ = placeholders(s, func(l string) { b.WriteString(l) }, func(ref string) error {
		kind, name, _ := strings.Cut(ref, ".")
		if kind == "param" {
			b.WriteString(sc.params[name])
		} else {
			b.WriteString(sc.device[name])
		}
		return nil
	})
	return b.String()
}

func (sc renderScope) renderMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = sc.render(v)
	}
	return out
}

// renderList renders each entry and drops those that render empty (an
// optional parameter left out).
func (sc renderScope) renderList(l []string) []string {
	var out []string
	for _, v := range l {
		if r := sc.render(v); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Rendered is a template's device configuration for one device.
type Rendered struct {
	Attributes    map[string]string `json:"attributes,omitempty"`
	Groups        []string          `json:"groups,omitempty"`
	Topics        TopicPolicy       `json:"topics,omitzero"`
	Configuration map[string]string `json:"configuration,omitempty"`
}

// render renders the template's device configuration.
func (t *Template) render(sc renderScope) Rendered {
	return Rendered{
		Attributes: sc.renderMap(t.Device.Attributes),
		Groups:     sc.renderList(t.Device.Groups),
		Topics: TopicPolicy{
			Publish:   sc.renderList(t.Device.Topics.Publish),
			Subscribe: sc.renderList(t.Device.Topics.Subscribe),
		},
		Configuration: sc.renderMap(t.Device.Configuration),
	}
}
