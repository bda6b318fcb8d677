package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/vuln"
)

// Permissions of the configuration audit and vulnerability routes
// (docs/api-contract.md): auditors read findings and run audits but do not
// silence what they audit; suppressing a finding and importing advisories
// change what the audit reports, and are the operators' job.
const (
	PermFindingsRead     Permission = "findings:read"
	PermAuditRun         Permission = "audit:run"
	PermFindingsSuppress Permission = "findings:suppress"
	PermVulnsManage      Permission = "vulns:manage"
)

// codeAuditBusy: an audit is running on this node already.
const codeAuditBusy = "audit_busy"

// Bounds of the audit routes.
const (
	// advisoryBodyLimit bounds an advisory import: a whole OSV database
	// export of an ecosystem goes in one request, so the import is one
	// transaction.
	advisoryBodyLimit = 64 << 20
	// maxSuppression is the longest a finding can be suppressed for.
	maxSuppression = 366 * 24 * time.Hour
	// maxReason bounds a suppression's reason.
	maxReason = 1000
	// defaultRuns and maxRuns bound GET /v1/audit/runs.
	defaultRuns = 20
	maxRuns     = 1000
)

// Auditor runs configuration audits; *audit.Runner is one.
type Auditor interface {
	// Start records a run as running and runs it in the background,
	// outliving ctx; it answers audit.ErrUnknownCheck, audit.ErrBusy and
	// audit.ErrStopping before recording anything.
	Start(ctx context.Context, req audit.Request) (*store.AuditRun, error)
	Params() audit.Params
}

// AuditStore keeps audit runs, findings and advisories. *store.Store
// implements it; a Store without it answers the audit routes with 503.
type AuditStore interface {
	audit.Store
	AuditRun(ctx context.Context, id string) (*store.AuditRun, error)
	AuditRuns(ctx context.Context, limit int) ([]store.AuditRun, error)
	Finding(ctx context.Context, key string) (*store.Finding, error)
	ListFindings(ctx context.Context, f store.FindingFilter, cursor string, limit int) ([]store.Finding, string, error)
	SuppressFinding(ctx context.Context, key, reason string, until time.Time, actor string) (*store.Finding, error)
	ImportAdvisories(ctx context.Context, advs []store.Advisory, replace bool, actor string) (store.AdvisoryImport, error)
}

var _ AuditStore = (*store.Store)(nil)

// AuditChecks is the answer of GET /v1/audit/checks: every check and the
// thresholds this server's audits use.
type AuditChecks struct {
	Checks []audit.Check `json:"checks"`
	Params AuditParams   `json:"params"`
}

// AuditParams are the audit thresholds as the API shows them.
type AuditParams struct {
	CertExpiryWarning string `json:"certExpiryWarning"`
	CAExpiryWarning   string `json:"caExpiryWarning"`
	NotSeenAfter      string `json:"notSeenAfter"`
	MaxCertAge        string `json:"maxCertAge"`
	MeteringLookback  string `json:"meteringLookback"`
	TakeoverThreshold int    `json:"takeoverThreshold"`
	MinRSABits        int    `json:"minRsaBits"`
	MinECBits         int    `json:"minEcBits"`
}

// AuditRunRequest is the body of POST /v1/audit/runs.
type AuditRunRequest struct {
	// Checks to run; empty runs all.
	Checks []string `json:"checks,omitempty"`
}

// findingPage is a page of findings.
type findingPage struct {
	Items []store.Finding `json:"items"`
	// NextCursor is empty on the last page.
	NextCursor string `json:"nextCursor"`
}

// SuppressRequest is the body of POST /v1/audit/findings/{key}/suppress.
type SuppressRequest struct {
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// AdvisoryImportRequest is the body of POST /v1/advisories: OSV records,
// each with the file it came from (for error messages and the record).
type AdvisoryImportRequest struct {
	Advisories []AdvisoryFile `json:"advisories"`
	// Replace removes stored advisories this import does not contain.
	Replace bool `json:"replace,omitempty"`
}

// AdvisoryFile is one OSV record to import.
type AdvisoryFile struct {
	Source string          `json:"source"`
	Record json.RawMessage `json:"record"`
}

// auditRoutes are the routes of this feature (see features.go).
func auditRoutes() []route {
	str := map[string]any{"type": "string"}
	return []route{
		{name: "listAuditChecks", method: "GET", pattern: "/v1/audit/checks", perm: PermFindingsRead, status: http.StatusOK,
			summary: "The configuration audit's checks and thresholds", endpoint: noBody((*Server).auditChecks)},
		{name: "runAudit", method: "POST", pattern: "/v1/audit/runs", perm: PermAuditRun, status: http.StatusAccepted,
			summary:  "Start the configuration audit now (all checks, or those named); it runs in the background, GET the run (Location) to follow it",
			endpoint: startAuditEndpoint()},
		{name: "listAuditRuns", method: "GET", pattern: "/v1/audit/runs", perm: PermFindingsRead, status: http.StatusOK,
			summary: "Audit runs, newest first", endpoint: noBody((*Server).listAuditRuns),
			query: []queryParam{{name: "limit", desc: fmt.Sprintf("how many runs (1 to %d, default %d)", maxRuns, defaultRuns), schema: map[string]any{"type": "integer"}}}},
		{name: "getAuditRun", method: "GET", pattern: "/v1/audit/runs/{id}", perm: PermFindingsRead, status: http.StatusOK,
			summary: "One audit run with its counts", endpoint: noBody((*Server).getAuditRun)},
		{name: "listFindings", method: "GET", pattern: "/v1/audit/findings", perm: PermFindingsRead, status: http.StatusOK,
			summary: "Audit findings in key order, filtered", endpoint: noBody((*Server).listFindings),
			query: []queryParam{
				{name: "severity", desc: "critical, high, medium or low", schema: str},
				{name: "check", desc: "a check id (GET /v1/audit/checks)", schema: str},
				{name: "device", desc: "a device id", schema: str},
				{name: "state", desc: "open, suppressed or resolved", schema: str},
				{name: "limit", desc: "page size (1 to 1000, default 100)", schema: map[string]any{"type": "integer"}},
				{name: "cursor", desc: "nextCursor of the previous page", schema: str},
			}},
		{name: "getFinding", method: "GET", pattern: "/v1/audit/findings/{key}", perm: PermFindingsRead, status: http.StatusOK,
			summary: "One finding", endpoint: noBody((*Server).getFinding)},
		{name: "suppressFinding", method: "POST", pattern: "/v1/audit/findings/{key}/suppress", perm: PermFindingsSuppress, status: http.StatusOK,
			summary: "Suppress a finding until a time, with a reason (recorded in the fleet audit log)", endpoint: withBody((*Server).suppressFinding)},
		{name: "importAdvisories", method: "POST", pattern: "/v1/advisories", perm: PermVulnsManage, status: http.StatusOK,
			summary: "Import OSV advisories in one transaction (added or replaced by id)", endpoint: withBody((*Server).importAdvisories),
			limit: advisoryBodyLimit},
		{name: "listAdvisories", method: "GET", pattern: "/v1/advisories", perm: PermFindingsRead, status: http.StatusOK,
			summary: "The imported OSV advisories", endpoint: noBody((*Server).listAdvisories)},
		{name: "listVulnerabilities", method: "GET", pattern: "/v1/vulnerabilities", perm: PermFindingsRead, status: http.StatusOK,
			summary: "Devices whose firmware or BOM components imported advisories affect, matched now", endpoint: noBody((*Server).listVulnerabilities),
			query: []queryParam{{name: "device", desc: "only this device", schema: str}}},
	}
}

// auditPermissions grants this feature's permissions to role r.
func auditPermissions(r Role) []Permission {
	switch r {
	case RoleAdmin, RoleOperator:
		return []Permission{PermFindingsRead, PermAuditRun, PermFindingsSuppress, PermVulnsManage}
	case RoleAuditor:
		return []Permission{PermFindingsRead, PermAuditRun}
	}
	return nil
}

func (s *Server) auditStore() (AuditStore, error) {
	as, ok := s.store.(AuditStore)
	if !ok {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this server keeps no audit data"}
	}
	return as, nil
}

// auditorFor returns the server's auditor, or 503.
func (s *Server) auditorFor() (Auditor, error) {
	if s.auditor == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this server runs no configuration audits"}
	}
	return s.auditor, nil
}

// defaultAuditor is the auditor of a server configured without one.
func defaultAuditor(cfg Config) Auditor {
	st, ok := cfg.Store.(audit.Store)
	if !ok {
		return nil
	}
	r, err := audit.New(audit.Config{Store: st, Logger: cfg.Logger, Now: cfg.Now, Node: "api"})
	if err != nil {
		return nil
	}
	return r
}

func (s *Server) auditChecks(*http.Request) (AuditChecks, error) {
	a, err := s.auditorFor()
	if err != nil {
		return AuditChecks{}, err
	}
	p := a.Params()
	return AuditChecks{Checks: audit.All(), Params: AuditParams{
		CertExpiryWarning: p.CertExpiryWarning.String(), CAExpiryWarning: p.CAExpiryWarning.String(),
		NotSeenAfter: p.NotSeenAfter.String(), MaxCertAge: p.MaxCertAge.String(), MeteringLookback: p.MeteringLookback.String(),
		TakeoverThreshold: p.TakeoverThreshold, MinRSABits: p.MinRSABits, MinECBits: p.MinECBits,
	}}, nil
}

// startAuditEndpoint is runAudit's endpoint: withBody's, answering with
// a Location header besides the run.
func startAuditEndpoint() endpoint {
	e := withBody((*Server).runAudit)
	serve := e.serve
	e.serve = func(s *Server, r *http.Request) (any, error) {
		out, err := serve(s, r)
		if err != nil {
			return nil, err
		}
		return &startedRun{s: s, run: out.(*store.AuditRun)}, nil
	}
	return e
}

// startedRun answers a started audit run: 202 Accepted with the run as
// recorded and where to follow it.
type startedRun struct {
	s   *Server
	run *store.AuditRun
}

func (sr *startedRun) writeTo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Location", "/v1/audit/runs/"+url.PathEscape(sr.run.ID))
	sr.s.writeJSON(w, r, http.StatusAccepted, sr.run)
}

// runAudit starts a run in the background and returns it at once: a run
// over a large fleet takes minutes, longer than a request may be held
// open behind a load balancer. The run belongs to this node, one at a
// time, as scheduled runs do (decision 0015).
func (s *Server) runAudit(r *http.Request, in *AuditRunRequest) (*store.AuditRun, error) {
	a, err := s.auditorFor()
	if err != nil {
		return nil, err
	}
	run, err := a.Start(r.Context(), audit.Request{Checks: in.Checks, Actor: principal(r).Actor()})
	var busy *audit.BusyError
	switch {
	case errors.Is(err, audit.ErrUnknownCheck):
		return nil, validationError("checks", "%v", err)
	case errors.As(err, &busy):
		return nil, errorf(http.StatusConflict, codeAuditBusy, "",
			"audit run %s is running on this node; wait for it to finish (GET /v1/audit/runs/%s) and start again", busy.RunID, busy.RunID)
	case errors.Is(err, audit.ErrBusy):
		return nil, errorf(http.StatusConflict, codeAuditBusy, "", "%v", err)
	case errors.Is(err, audit.ErrStopping):
		return nil, errorf(http.StatusServiceUnavailable, codeUnavailable, "", "this node is stopping; start the audit on another node or after it restarts")
	}
	return run, err
}

func (s *Server) listAuditRuns(r *http.Request) (list[store.AuditRun], error) {
	as, err := s.auditStore()
	if err != nil {
		return list[store.AuditRun]{}, err
	}
	limit := defaultRuns
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRuns {
			return list[store.AuditRun]{}, queryError("limit", "limit must be an integer from 1 to %d, got %q", maxRuns, v)
		}
		limit = n
	}
	runs, err := as.AuditRuns(r.Context(), limit)
	return listOf(runs), err
}

func (s *Server) getAuditRun(r *http.Request) (*store.AuditRun, error) {
	as, err := s.auditStore()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	run, err := as.AuditRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("audit run", id)
	}
	return run, err
}

func (s *Server) listFindings(r *http.Request) (findingPage, error) {
	as, err := s.auditStore()
	if err != nil {
		return findingPage{}, err
	}
	q := r.URL.Query()
	f := store.FindingFilter{Severity: q.Get("severity"), Check: q.Get("check"), DeviceID: q.Get("device"), State: q.Get("state")}
	if f.Severity != "" && !slices.Contains(audit.Severities(), f.Severity) {
		return findingPage{}, queryError("severity", "severity must be one of %s, got %q", strings.Join(audit.Severities(), ", "), f.Severity)
	}
	if f.Check != "" && !slices.Contains(audit.CheckIDs(), f.Check) {
		return findingPage{}, queryError("check", "check must be one of %s, got %q", strings.Join(audit.CheckIDs(), ", "), f.Check)
	}
	if states := []string{store.FindingOpen, store.FindingSuppressed, store.FindingResolved}; f.State != "" && !slices.Contains(states, f.State) {
		return findingPage{}, queryError("state", "state must be one of %s, got %q", strings.Join(states, ", "), f.State)
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return findingPage{}, err
	}
	items, next, err := as.ListFindings(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		return findingPage{}, err
	}
	return findingPage{Items: items, NextCursor: next}, nil
}

func (s *Server) getFinding(r *http.Request) (*store.Finding, error) {
	as, err := s.auditStore()
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	f, err := as.Finding(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("finding", key)
	}
	return f, err
}

func (s *Server) suppressFinding(r *http.Request, in *SuppressRequest) (*store.Finding, error) {
	as, err := s.auditStore()
	if err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(in.Reason)
	now := s.now()
	switch {
	case reason == "":
		return nil, validationError("reason", "a suppression needs a reason: say why the finding is acceptable")
	case len(reason) > maxReason:
		return nil, validationError("reason", "is longer than %d characters", maxReason)
	case in.ExpiresAt.IsZero():
		return nil, validationError("expiresAt", "a suppression needs an expiry (RFC 3339 time), at most %d days ahead", int(maxSuppression.Hours()/24))
	case !in.ExpiresAt.After(now):
		return nil, validationError("expiresAt", "%s is not in the future", in.ExpiresAt.Format(time.RFC3339))
	case in.ExpiresAt.Sub(now) > maxSuppression:
		return nil, validationError("expiresAt", "is more than %d days ahead; suppress again when it expires", int(maxSuppression.Hours()/24))
	}
	key := r.PathValue("key")
	f, err := as.SuppressFinding(r.Context(), key, reason, in.ExpiresAt, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("finding", key)
	}
	return f, err
}

func (s *Server) importAdvisories(r *http.Request, in *AdvisoryImportRequest) (store.AdvisoryImport, error) {
	as, err := s.auditStore()
	if err != nil {
		return store.AdvisoryImport{}, err
	}
	if len(in.Advisories) == 0 {
		return store.AdvisoryImport{}, validationError("advisories", "no advisories to import")
	}
	advs := make([]store.Advisory, 0, len(in.Advisories))
	seen := map[string]string{}
	for i, f := range in.Advisories {
		field := fmt.Sprintf("advisories[%d]", i)
		a, err := vuln.Parse(f.Record)
		if err != nil {
			return store.AdvisoryImport{}, validationError(field, "%s: %v", sourceName(f.Source, i), err)
		}
		if first, dup := seen[a.ID]; dup {
			return store.AdvisoryImport{}, validationError(field, "%s: advisory %s is also in %s", sourceName(f.Source, i), a.ID, first)
		}
		seen[a.ID] = sourceName(f.Source, i)
		sa := store.Advisory{ID: a.ID, Modified: a.Modified, Summary: a.Summary, Source: f.Source, Doc: string(f.Record)}
		for _, af := range a.Affected {
			name := af.Package.Name
			eco := af.Package.Ecosystem
			if name == "" {
				if e, n, ok := vuln.FromPURL(af.Package.PURL); ok {
					name = n
					if eco == "" {
						eco = e
					}
				}
			}
			sa.Packages = append(sa.Packages, store.AdvisoryPackage{Ecosystem: eco, Name: name})
		}
		advs = append(advs, sa)
	}
	return as.ImportAdvisories(r.Context(), advs, in.Replace, principal(r).Actor())
}

func sourceName(source string, i int) string {
	if source == "" {
		return fmt.Sprintf("record %d", i)
	}
	return source
}

func (s *Server) listAdvisories(r *http.Request) (list[store.Advisory], error) {
	as, err := s.auditStore()
	if err != nil {
		return list[store.Advisory]{}, err
	}
	advs, err := as.Advisories(r.Context(), false)
	return listOf(advs), err
}

func (s *Server) listVulnerabilities(r *http.Request) (list[audit.DeviceVulns], error) {
	as, err := s.auditStore()
	if err != nil {
		return list[audit.DeviceVulns]{}, err
	}
	sc, err := audit.NewScanner(r.Context(), as)
	if err != nil {
		return list[audit.DeviceVulns]{}, err
	}
	var out []audit.DeviceVulns
	if id := r.URL.Query().Get("device"); id != "" {
		d, err := s.store.GetDevice(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return list[audit.DeviceVulns]{}, notFound("device", id)
		}
		if err != nil {
			return list[audit.DeviceVulns]{}, err
		}
		dv, err := sc.Device(d)
		if err != nil {
			return list[audit.DeviceVulns]{}, err
		}
		if len(dv.Matches) > 0 {
			out = append(out, dv)
		}
		return listOf(out), nil
	}
	err = sc.Fleet(r.Context(), func(dv audit.DeviceVulns) error {
		out = append(out, dv)
		return nil
	})
	slices.SortFunc(out, func(a, b audit.DeviceVulns) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return listOf(out), err
}
