package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
)

// openAPIVersion is the OpenAPI version of the generated document.
const openAPIVersion = "3.0.3"

// serveOpenAPI answers with the document New generated.
func (s *Server) serveOpenAPI(*http.Request) (json.RawMessage, error) {
	return s.openapi, nil
}

// openAPIDocument generates the OpenAPI document from the route table and
// the Go types the handlers decode and answer with, so the document cannot
// drift from the code.
func openAPIDocument(table []route) ([]byte, error) {
	g := &schemaGen{components: map[string]any{}, names: map[string]reflect.Type{}}
	errRef, err := g.schema(reflect.TypeFor[apiError]())
	if err != nil {
		return nil, err
	}
	paths := map[string]map[string]any{}
	for _, rt := range table {
		op, err := g.operation(rt)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", rt.name, err)
		}
		if paths[rt.pattern] == nil {
			paths[rt.pattern] = map[string]any{}
		}
		paths[rt.pattern][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": openAPIVersion,
		"info": map[string]any{
			"title":   "Muster admin API",
			"version": "v1",
			"description": "Devices from manufacturing to disposal, their hash-chained histories and passports, " +
				"API tokens and the fleet audit log. Every failure answers with an Error; see docs/api-contract.md.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an API token, mst_..."},
			},
			"responses": map[string]any{
				"Error": map[string]any{
					"description": "the request failed; code says why",
					"content":     map[string]any{"application/json": map[string]any{"schema": errRef}},
				},
			},
		},
	}
	return json.Marshal(doc)
}

// operation is the OpenAPI operation of one route.
func (g *schemaGen) operation(rt route) (map[string]any, error) {
	op := map[string]any{
		"operationId": rt.name,
		"summary":     rt.summary,
		"tags":        []string{tagOf(rt.pattern)},
	}
	var params []any
	for _, name := range pathParams(rt.pattern) {
		params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, p := range rt.params() {
		param := map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": p.schema}
		if p.repeat {
			param["schema"] = map[string]any{"type": "array", "items": p.schema}
			param["explode"] = true
		}
		params = append(params, param)
	}
	if rt.in != nil && strings.HasPrefix(rt.pattern, "/v1/devices/{id}") {
		params = append(params, map[string]any{"name": "If-Match", "in": "header",
			"description": "the device version you read (its ETag); the change fails with 412 if it moved on",
			"schema":      map[string]any{"type": "string"}})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if rt.in != nil {
		in, err := g.schema(rt.in)
		if err != nil {
			return nil, err
		}
		content := map[string]any{"application/json": map[string]any{"schema": in}}
		if rt.stream {
			// A manifest: one row per CSV record or JSON line.
			content = map[string]any{
				"text/csv":             map[string]any{"schema": map[string]any{"type": "string"}},
				"application/x-ndjson": map[string]any{"schema": in},
			}
		}
		op["requestBody"] = map[string]any{"required": true, "content": content}
	}
	ok := map[string]any{"description": http.StatusText(rt.status)}
	if rt.out != nil {
		out, err := g.schema(rt.out)
		if err != nil {
			return nil, err
		}
		content := map[string]any{"application/json": map[string]any{"schema": out}}
		if rt.lines {
			content = map[string]any{"application/x-ndjson": map[string]any{"schema": out}}
		}
		if rt.markdown {
			content["text/markdown"] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
		ok["content"] = content
	}
	errResp := map[string]any{"$ref": "#/components/responses/Error"}
	responses := map[string]any{strconv.Itoa(rt.status): ok, "default": errResp}
	switch rt.perm {
	case PermPublic:
		op["security"] = []any{}
	default:
		op["security"] = []any{map[string]any{"bearer": []string{}}}
		op["x-muster-permission"] = string(rt.perm)
		responses["401"] = errResp
		if rt.perm != PermAnyToken {
			responses["403"] = errResp
		}
	}
	op["responses"] = responses
	return op, nil
}

// tagOf groups operations by the first path segment after /v1.
func tagOf(pattern string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(pattern, "/v1/"), "/")
	switch seg {
	case "devices", "tokens", "audit-log", "factories", "cas":
		return seg
	}
	return "meta"
}

// pathParams returns the {name} wildcards of a pattern in order.
func pathParams(pattern string) []string {
	var names []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return names
}

// schemaGen turns Go types into OpenAPI schemas, registering every named
// struct as a component.
type schemaGen struct {
	components map[string]any
	names      map[string]reflect.Type
}

// requiredFields lists the fields a request must carry, by component. Go
// types cannot say it: the same struct is often optional in a response.
func requiredFields(component string) []string {
	switch component {
	case "DeviceInput":
		return []string{"identity"}
	case "Identity":
		return []string{"serial", "model"}
	case "StateRequest":
		return []string{"state"}
	case "DecommissionRequest":
		return []string{"reason", "wipe"}
	case "TokenRequest":
		return []string{"name", "role"}
	case "FactoryRequest":
		return []string{"name", "models", "serialPattern"}
	case "RotateRequest":
		return []string{"purpose"}
	case "Row":
		return []string{"serial", "model"}
	case "QCResult", "TestResult":
		return []string{"test", "result"}
	case "MaintenanceItem":
		return []string{"problem"}
	case "WipeAttestation":
		return []string{"method", "by"}
	case "Disposal":
		return []string{"method"}
	case "Error":
		return []string{"code", "message"}
	}
	return nil
}

// schema returns the schema of t: a $ref for named structs, inline
// otherwise.
func (g *schemaGen) schema(t reflect.Type) (map[string]any, error) {
	switch t {
	case reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case reflect.TypeFor[json.RawMessage]():
		return map[string]any{"description": "any JSON value"}, nil
	case reflect.TypeFor[fleet.State]():
		return map[string]any{"type": "string", "enum": stateNames()}, nil
	case reflect.TypeFor[Role]():
		return map[string]any{"type": "string", "enum": Roles()}, nil
	case reflect.TypeFor[provision.Duration]():
		return map[string]any{"type": "string", "description": "a Go duration such as 720h, or whole days such as 365d"}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		s, err := g.schema(t.Elem())
		if err != nil || s["$ref"] != nil {
			return s, err // OpenAPI 3.0 ignores siblings of $ref
		}
		s["nullable"] = true
		return s, nil
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int32, reflect.Uint32:
		return map[string]any{"type": "integer", "format": "int32"}, nil
	case reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}, nil
	case reflect.Interface:
		return map[string]any{}, nil
	case reflect.Slice, reflect.Array:
		items, err := g.schema(t.Elem())
		return map[string]any{"type": "array", "items": items}, err
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s is not a string", t.Key())
		}
		vals, err := g.schema(t.Elem())
		return map[string]any{"type": "object", "additionalProperties": vals}, err
	case reflect.Struct:
		return g.component(t)
	}
	return nil, fmt.Errorf("no OpenAPI schema for %s", t)
}

// component registers struct t under its schema name and returns its $ref.
func (g *schemaGen) component(t reflect.Type) (map[string]any, error) {
	name := schemaName(t)
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if have, ok := g.names[name]; ok {
		if have != t {
			return nil, fmt.Errorf("schema name %s is taken by %s and %s", name, have, t)
		}
		return ref, nil
	}
	g.names[name] = t // before the fields, so recursive types terminate
	props := map[string]any{}
	if err := g.properties(t, props); err != nil {
		return nil, err
	}
	s := map[string]any{"type": "object", "properties": props}
	if req := requiredFields(name); req != nil {
		s["required"] = req
	}
	g.components[name] = s
	return ref, nil
}

// properties adds t's JSON fields to props, flattening embedded structs as
// encoding/json does.
func (g *schemaGen) properties(t reflect.Type, props map[string]any) error {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			if err := g.properties(f.Type, props); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := g.schema(f.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		props[name] = s
	}
	return nil
}

// schemaName names a component after its Go type: exported spelling, the
// error body as Error, and list[T] as TList.
func schemaName(t reflect.Type) string {
	if t == reflect.TypeFor[apiError]() {
		return "Error"
	}
	name := t.Name()
	if strings.HasPrefix(name, "list[") {
		return schemaName(t.Field(0).Type.Elem()) + "List"
	}
	r := []rune(name)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// stateNames lists the lifecycle states for enums.
func stateNames() []string {
	names := make([]string, len(fleet.States))
	for i, s := range fleet.States {
		names[i] = string(s)
	}
	return names
}
