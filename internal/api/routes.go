package api

import (
	"net/http"
	"reflect"
	"strings"
)

// Request body limits (docs/api-contract.md): device documents carry BOMs,
// everything else is small.
const (
	deviceBodyLimit = 1 << 20
	smallBodyLimit  = 64 << 10
)

// route is one operation of the API. The route table is the single source
// of truth: the mux, authentication, authorization, query checking, body
// limits and the OpenAPI document all read it.
type route struct {
	name    string // OpenAPI operationId, unique
	method  string
	pattern string // ServeMux path pattern; {id} is also OpenAPI syntax
	perm    Permission
	summary string
	status  int // status of a successful answer
	query   []queryParam
	// markdown means the answer can also be rendered as Markdown with
	// ?format=md; the answer type then has a Markdown() string method.
	markdown bool
	endpoint
}

// bodyLimit is the request body limit of rt: 1 MiB on device routes,
// whose bodies carry BOMs, 64 KiB elsewhere, and none without a body.
func (rt route) bodyLimit() int64 {
	switch {
	case rt.in == nil:
		return 0
	case strings.HasPrefix(rt.pattern, "/v1/devices"):
		return deviceBodyLimit
	}
	return smallBodyLimit
}

// params is every query parameter rt accepts, including the format
// parameter of routes that can answer in Markdown.
func (rt route) params() []queryParam {
	if !rt.markdown {
		return rt.query
	}
	return append(rt.query[:len(rt.query):len(rt.query)], queryParam{
		name: "format", desc: "json (default) or md for Markdown",
		schema: map[string]any{"type": "string", "enum": []string{"json", "md"}, "default": "json"},
	})
}

// queryParam declares one accepted query parameter. Requests with
// parameters a route does not declare are refused, so a typo in a filter
// never silently widens a listing.
type queryParam struct {
	name   string
	desc   string
	schema map[string]any
	repeat bool // may be given more than once
}

// endpoint is a route's handler together with the Go types of its request
// and response bodies, which the OpenAPI document is generated from.
type endpoint struct {
	in, out reflect.Type // nil when there is no body
	serve   func(s *Server, r *http.Request) (any, error)
}

// withBody adapts a handler that takes a JSON request body. The body is
// decoded strictly into In before f runs, so every such route decodes the
// same way and the documented request type is the decoded one.
func withBody[In, Out any](f func(*Server, *http.Request, *In) (Out, error)) endpoint {
	return endpoint{
		in:  reflect.TypeFor[In](),
		out: reflect.TypeFor[Out](),
		serve: func(s *Server, r *http.Request) (any, error) {
			in, err := decodeJSON[In](r)
			if err != nil {
				return nil, err
			}
			return f(s, r, in)
		},
	}
}

// noBody adapts a handler without a request body.
func noBody[Out any](f func(*Server, *http.Request) (Out, error)) endpoint {
	return endpoint{
		out:   reflect.TypeFor[Out](),
		serve: func(s *Server, r *http.Request) (any, error) { return f(s, r) },
	}
}

// noContent adapts a handler that answers with a status and no body.
func noContent(f func(*Server, *http.Request) error) endpoint {
	return endpoint{serve: func(s *Server, r *http.Request) (any, error) { return nil, f(s, r) }}
}

// routes returns the route table. It is a function rather than a variable
// so nothing can modify the table that a running server was built from.
func routes() []route {
	str := map[string]any{"type": "string"}
	return []route{
		{name: "health", method: "GET", pattern: "/v1/healthz", perm: PermPublic, status: http.StatusOK,
			summary: "Liveness check", endpoint: noBody((*Server).health)},
		{name: "openapi", method: "GET", pattern: "/v1/openapi.json", perm: PermPublic, status: http.StatusOK,
			summary: "This OpenAPI 3.0 document", endpoint: noBody((*Server).serveOpenAPI)},
		{name: "whoami", method: "GET", pattern: "/v1/whoami", perm: PermAnyToken, status: http.StatusOK,
			summary: "The principal of the calling token", endpoint: noBody((*Server).whoami)},

		{name: "createDevice", method: "POST", pattern: "/v1/devices", perm: PermDevicesCreate, status: http.StatusCreated,
			summary: "Register a device (initial state manufactured)", endpoint: withBody((*Server).createDevice)},
		{name: "listDevices", method: "GET", pattern: "/v1/devices", perm: PermDevicesRead, status: http.StatusOK,
			summary: "List devices, filtered and paginated", endpoint: noBody((*Server).listDevices),
			query: []queryParam{
				{name: "state", desc: "lifecycle state", schema: map[string]any{"type": "string", "enum": stateNames()}},
				{name: "model", desc: "exact model", schema: str},
				{name: "batch", desc: "exact manufacturing batch", schema: str},
				{name: "owner", desc: "exact owner", schema: str},
				{name: "factory", desc: "exact factory (a manufacturer token may name only its own)", schema: str},
				{name: "group", desc: "member of this inventory group", schema: str},
				{name: "tag", desc: "has this inventory tag", schema: str},
				{name: "serial", desc: "serial number prefix", schema: str},
				{name: "component", desc: "BOM lists a component with this name", schema: str},
				{name: "attr", desc: "key=value attribute match; repeat for AND", schema: str, repeat: true},
				{name: "limit", desc: "page size", schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}},
				{name: "cursor", desc: "nextCursor of the previous page", schema: str},
			}},
		{name: "getDevice", method: "GET", pattern: "/v1/devices/{id}", perm: PermDevicesRead, status: http.StatusOK,
			summary: "Read a device", endpoint: noBody((*Server).getDevice)},
		{name: "patchDevice", method: "PATCH", pattern: "/v1/devices/{id}", perm: PermDevicesUpdate, status: http.StatusOK,
			summary: "Replace sections of a device, merge attributes", endpoint: withBody((*Server).patchDevice)},
		{name: "changeState", method: "POST", pattern: "/v1/devices/{id}/state", perm: PermDevicesState, status: http.StatusOK,
			summary: "Move a device to another lifecycle state", endpoint: withBody((*Server).changeState)},
		{name: "addQC", method: "POST", pattern: "/v1/devices/{id}/qc", perm: PermDevicesUpdate, status: http.StatusCreated,
			summary: "Record a quality-control result", endpoint: withBody((*Server).addQC)},
		{name: "addTest", method: "POST", pattern: "/v1/devices/{id}/tests", perm: PermDevicesMaintain, status: http.StatusCreated,
			summary: "Record a provisioning test result", endpoint: withBody((*Server).addTest)},
		{name: "addMaintenance", method: "POST", pattern: "/v1/devices/{id}/maintenance", perm: PermDevicesMaintain, status: http.StatusCreated,
			summary: "Record a maintenance item", endpoint: withBody((*Server).addMaintenance)},
		{name: "decommission", method: "POST", pattern: "/v1/devices/{id}/decommission", perm: PermDevicesDecommission, status: http.StatusOK,
			summary: "Decommission a device with a data-wipe attestation", endpoint: withBody((*Server).decommission)},
		{name: "dispose", method: "POST", pattern: "/v1/devices/{id}/disposal", perm: PermDevicesDecommission, status: http.StatusOK,
			summary: "Record the disposal (or refurbishment) of a decommissioned device", endpoint: withBody((*Server).dispose)},
		{name: "deviceComponents", method: "GET", pattern: "/v1/devices/{id}/components", perm: PermDevicesRead, status: http.StatusOK,
			summary: "The device's BOM components, flattened", endpoint: noBody((*Server).deviceComponents)},
		{name: "deviceHistory", method: "GET", pattern: "/v1/devices/{id}/history", perm: PermHistoryRead, status: http.StatusOK,
			summary: "The device's hash-chained history", endpoint: noBody((*Server).deviceHistory)},
		{name: "verifyDeviceHistory", method: "GET", pattern: "/v1/devices/{id}/history/verify", perm: PermHistoryRead, status: http.StatusOK,
			summary: "Verify the device's history chain", endpoint: noBody((*Server).verifyDeviceHistory)},
		{name: "devicePassport", method: "GET", pattern: "/v1/devices/{id}/passport", perm: PermDevicesRead, status: http.StatusOK,
			markdown: true, summary: "The device's whole life in one document", endpoint: noBody((*Server).passport)},

		{name: "createToken", method: "POST", pattern: "/v1/tokens", perm: PermTokensManage, status: http.StatusCreated,
			summary: "Create an API token; the secret is shown once", endpoint: withBody((*Server).createToken)},
		{name: "listTokens", method: "GET", pattern: "/v1/tokens", perm: PermTokensManage, status: http.StatusOK,
			summary: "List API tokens (never their secrets)", endpoint: noBody((*Server).listTokens)},
		{name: "revokeToken", method: "DELETE", pattern: "/v1/tokens/{id}", perm: PermTokensManage, status: http.StatusNoContent,
			summary: "Revoke an API token", endpoint: noContent((*Server).revokeToken)},

		{name: "auditLog", method: "GET", pattern: "/v1/audit-log", perm: PermAuditRead, status: http.StatusOK,
			summary: "The fleet audit log", endpoint: noBody((*Server).auditLog)},
		{name: "verifyAuditLog", method: "GET", pattern: "/v1/audit-log/verify", perm: PermAuditRead, status: http.StatusOK,
			summary: "Verify the fleet audit log chain", endpoint: noBody((*Server).verifyAuditLog)},
	}
}
