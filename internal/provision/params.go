package provision

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// maxParamLen bounds one parameter value, which ends up in device records.
const maxParamLen = 1024

// value checks v against the parameter's type and returns its text form,
// the form placeholders render and hooks see.
func (p *Parameter) value(v any) (string, error) {
	switch p.Type {
	case ParamString, ParamEnum:
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s must be a string", p.Name)
		}
		if len(s) > maxParamLen || strings.ContainsAny(s, "\x00\r\n") {
			return "", fmt.Errorf("%s must be one line of at most %d bytes", p.Name, maxParamLen)
		}
		if p.Type == ParamEnum && !slices.Contains(p.Values, s) {
			return "", fmt.Errorf("%s must be one of %s", p.Name, strings.Join(p.Values, ", "))
		}
		return s, nil
	case ParamInt:
		switch n := v.(type) {
		case float64:
			if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
				return "", fmt.Errorf("%s must be a whole number", p.Name)
			}
			return strconv.FormatInt(int64(n), 10), nil
		case int:
			return strconv.Itoa(n), nil
		case json.Number:
			if _, err := n.Int64(); err != nil {
				return "", fmt.Errorf("%s must be a whole number", p.Name)
			}
			return n.String(), nil
		}
		return "", fmt.Errorf("%s must be a whole number", p.Name)
	case ParamBool:
		b, ok := v.(bool)
		if !ok {
			return "", fmt.Errorf("%s must be true or false", p.Name)
		}
		return strconv.FormatBool(b), nil
	}
	return "", fmt.Errorf("%s has unknown type %q", p.Name, p.Type)
}

// resolveParameters applies the template's parameters to what a request
// (and then the hook, in overrides) gave: unknown names and wrong types
// are errors, defaults fill gaps, required ones must end up set.
func (t *Template) resolveParameters(given, overrides map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(t.Parameters))
	for name := range given {
		if !slices.ContainsFunc(t.Parameters, func(p Parameter) bool { return p.Name == name }) {
			return nil, fmt.Errorf("parameter %q is not declared by template %s", name, t.Name)
		}
	}
	for i := range t.Parameters {
		p := &t.Parameters[i]
		v, ok := overrides[p.Name]
		if !ok {
			v, ok = given[p.Name]
		}
		if !ok || v == nil {
			v, ok = p.Default, p.Default != nil
		}
		if !ok {
			if p.Required {
				return nil, fmt.Errorf("parameter %q is required", p.Name)
			}
			continue
		}
		s, err := p.value(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %w", err)
		}
		out[p.Name] = s
	}
	return out, nil
}
