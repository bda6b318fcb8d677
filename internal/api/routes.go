package api

import (
	"net/http"
	"reflect"
	"strings"

	"github.com/muster-iot/muster/internal/mfg"
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
	// limit, when set, replaces the default body limit (an advisory
	// import carries a whole OSV database in one transaction).
	limit int64
	endpoint
}

// bodyLimit is the request body limit of rt: 1 MiB on device routes,
// whose bodies carry BOMs, 64 KiB elsewhere, and none without a body.
func (rt route) bodyLimit() int64 {
	switch {
	case rt.limit > 0:
		return rt.limit
	case rt.in == nil, rt.stream:
		// A streamed body (a manifest) has no total limit; its reader
		// bounds each row instead.
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
	// stream marks a route whose request body is read as a stream of rows;
	// in is then the type of one row.
	stream bool
	// lines marks an answer that is a stream of JSON lines; out is then
	// the type of one line.
	lines bool
}

// responseStream is what a streamed route's handler returns: it writes the
// whole answer itself, status included, once the request was accepted.
type responseStream interface {
	writeTo(w http.ResponseWriter, r *http.Request)
}

// streamed adapts a handler that takes its request body as a stream of In
// rows (CSV or JSON lines) and answers with a stream of Out lines. Errors
// it returns come before anything is written and answer as usual.
func streamed[In, Out any](f func(*Server, *http.Request) (responseStream, error)) endpoint {
	return endpoint{
		in:     reflect.TypeFor[In](),
		out:    reflect.TypeFor[Out](),
		stream: true,
		lines:  true,
		serve: func(s *Server, r *http.Request) (any, error) {
			st, err := f(s, r)
			if err != nil {
				return nil, err
			}
			return st, nil
		},
	}
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
	return append([]route{
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
			query: append(deviceFilterParams(),
				queryParam{name: "limit", desc: "page size", schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}},
				queryParam{name: "cursor", desc: "nextCursor of the previous page", schema: str},
			)},
		// The literal segment wins over {id} in the mux, and no device id
		// is "count": ids are "dev_" and base32 (fleet.NewID).
		{name: "countDevices", method: "GET", pattern: "/v1/devices/count", perm: PermDevicesRead, status: http.StatusOK,
			summary: "Count the devices a filter matches, without listing them", endpoint: noBody((*Server).countDevices),
			query: deviceFilterParams()},
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
		{name: "deviceCertificates", method: "GET", pattern: "/v1/devices/{id}/certificates", perm: PermDevicesRead, status: http.StatusOK,
			summary: "The device's certificates, revoked ones included", endpoint: noBody((*Server).deviceCertificates)},
		{name: "revokeDeviceCertificates", method: "POST", pattern: "/v1/devices/{id}/certificates/revoke", perm: PermCertsRevoke, status: http.StatusOK,
			summary: "Revoke every certificate of the device", endpoint: withBody((*Server).revokeDeviceCertificates)},

		{name: "getCertificate", method: "GET", pattern: "/v1/certificates/{caId}/{serial}", perm: PermDevicesRead, status: http.StatusOK,
			summary: "A certificate by issuing CA and serial (hex), with its revocation", endpoint: noBody((*Server).getCertificate)},
		{name: "revokeCertificate", method: "POST", pattern: "/v1/certificates/{caId}/{serial}/revoke", perm: PermCertsRevoke, status: http.StatusOK,
			summary: "Revoke one certificate", endpoint: withBody((*Server).revokeCertificate)},

		{name: "createFactory", method: "POST", pattern: "/v1/factories", perm: PermFactoriesManage, status: http.StatusCreated,
			summary:  "Register a factory with its own Muster manufacturing CA, or the maker's CA after proof of possession",
			endpoint: withBody((*Server).createFactory)},
		{name: "listFactories", method: "GET", pattern: "/v1/factories", perm: PermFactoriesRead, status: http.StatusOK,
			summary: "List factories (a manufacturer sees its own)", endpoint: noBody((*Server).listFactories)},
		{name: "getFactory", method: "GET", pattern: "/v1/factories/{name}", perm: PermFactoriesRead, status: http.StatusOK,
			summary: "Read a factory and its CAs", endpoint: noBody((*Server).getFactory)},
		{name: "factoryChallenge", method: "POST", pattern: "/v1/factories/{name}/challenge", perm: PermFactoriesManage, status: http.StatusCreated,
			summary:  "A nonce for registering a maker's CA: sign a certificate with CN=nonce with that CA's key",
			endpoint: withBody((*Server).factoryChallenge)},
		{name: "submitBatch", method: "POST", pattern: "/v1/factories/{name}/batches", perm: PermBatchesSubmit, status: http.StatusOK,
			summary:  "Register a manufacturing batch from a streamed manifest; answers one result per row as JSON lines, then the summary",
			endpoint: streamed[mfg.Row, mfg.Result]((*Server).submitBatch),
			query: []queryParam{
				{name: "keyMode", desc: "csr (rows carry CSRs), mint (Muster makes keys, returned once) or register (rows carry the maker's certificates); default csr, register for external CAs",
					schema: map[string]any{"type": "string", "enum": []string{"csr", "mint", "register"}}},
				{name: "format", desc: "csv or jsonl; default from Content-Type", schema: map[string]any{"type": "string", "enum": []string{"csv", "jsonl"}}},
				{name: "batch", desc: "batch id, the devices' batch unless a row names its own; default a new id", schema: str},
			}},
		{name: "getBatch", method: "GET", pattern: "/v1/factories/{name}/batches/{batch}", perm: PermFactoriesRead, status: http.StatusOK,
			summary: "A batch and the totals of its latest submission", endpoint: noBody((*Server).getBatch)},

		{name: "listCAs", method: "GET", pattern: "/v1/cas", perm: PermCAsRead, status: http.StatusOK,
			summary: "List the CAs Muster signs with and trusts", endpoint: noBody((*Server).listCAs),
			query: []queryParam{
				{name: "purpose", desc: "root, operational, server, manufacturing or external", schema: str},
				{name: "factory", desc: "factory of manufacturing and external CAs", schema: str},
				{name: "status", desc: "active, retiring or retired", schema: str},
			}},
		{name: "caChains", method: "GET", pattern: "/v1/cas/chains", perm: PermCAsRead, status: http.StatusOK,
			summary: "The certificate chains relying parties need, with the file names muster ca export writes", endpoint: noBody((*Server).caChains)},
		{name: "rotateCA", method: "POST", pattern: "/v1/cas/rotate", perm: PermCAsManage, status: http.StatusCreated,
			summary: "Replace the operational, server or a manufacturing CA; the old one stays trusted for the overlap", endpoint: withBody((*Server).rotateCA)},

		{name: "createTemplate", method: "POST", pattern: "/v1/templates", perm: PermTemplatesManage, status: http.StatusCreated,
			summary: "Create a provisioning template (version 1)", endpoint: withBody((*Server).createTemplate)},
		{name: "listTemplates", method: "GET", pattern: "/v1/templates", perm: PermTemplatesRead, status: http.StatusOK,
			summary: "List provisioning templates, newest version of each", endpoint: noBody((*Server).listTemplates)},
		{name: "getTemplate", method: "GET", pattern: "/v1/templates/{name}", perm: PermTemplatesRead, status: http.StatusOK,
			summary: "Read a provisioning template's newest version", endpoint: noBody((*Server).getTemplate)},
		{name: "updateTemplate", method: "PUT", pattern: "/v1/templates/{name}", perm: PermTemplatesManage, status: http.StatusOK,
			summary: "Store a new version of a provisioning template", endpoint: withBody((*Server).updateTemplate)},
		{name: "deleteTemplate", method: "DELETE", pattern: "/v1/templates/{name}", perm: PermTemplatesManage, status: http.StatusNoContent,
			summary: "Delete a provisioning template (issued certificates keep naming it)", endpoint: noContent((*Server).deleteTemplate)},

		{name: "listApprovals", method: "GET", pattern: "/v1/approvals", perm: PermApprovalsManage, status: http.StatusOK,
			summary: "Provisioning requests waiting for manual approval", endpoint: noBody((*Server).listApprovals)},
		{name: "approve", method: "POST", pattern: "/v1/approvals/approve", perm: PermApprovalsManage, status: http.StatusOK,
			summary: "Approve provisioning requests", endpoint: withBody((*Server).approve)},
		{name: "reject", method: "POST", pattern: "/v1/approvals/reject", perm: PermApprovalsManage, status: http.StatusOK,
			summary: "Reject provisioning requests, with a reason", endpoint: withBody((*Server).reject)},

		{name: "createClaim", method: "POST", pattern: "/v1/claims", perm: PermClaimsCreate, status: http.StatusCreated,
			summary: "Create a short-lived, single-use claim for a device without a birth certificate", endpoint: withBody((*Server).createClaim)},

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
	}, featureRoutes()...)
}
