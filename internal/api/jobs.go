package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store"
)

// Permissions of bulk jobs (docs/api-contract.md, "Bulk jobs").
const (
	// PermJobsRun starts and cancels jobs. Starting one also needs the
	// permission of its operation (devices:create for register, ...), so
	// a job never does what its caller could not do row by row.
	PermJobsRun Permission = "jobs:run"
	// PermJobsRead reads jobs and their per-row results.
	PermJobsRead Permission = "jobs:read"
)

// JobService starts and reads bulk jobs; *jobs.Service is one.
type JobService interface {
	Start(ctx context.Context, spec jobs.Spec, r io.Reader, format mfg.Format, actor string) (*store.Job, error)
	Get(ctx context.Context, id string) (*store.Job, error)
	List(ctx context.Context, status, before string, limit int) ([]store.Job, error)
	Cancel(ctx context.Context, id, actor, reason string) (*store.Job, error)
	Delete(ctx context.Context, id, actor string) error
	Results(ctx context.Context, id string, errorsOnly bool, fn func(*jobs.RowResult) error) error
}

// jobRoutes are the routes of this feature (see features.go).
func jobRoutes() []route {
	str := map[string]any{"type": "string"}
	return []route{
		{name: "startJob", method: "POST", pattern: "/v1/jobs", perm: PermJobsRun, status: http.StatusCreated,
			summary: "Start a bulk job: upload a CSV or JSON lines manifest (streamed, stored in chunks) and queue it; answers the job",
			endpoint: endpoint{in: reflect.TypeFor[jobs.ManifestRow](), out: reflect.TypeFor[store.Job](), stream: true,
				serve: func(s *Server, r *http.Request) (any, error) { return s.startJob(r) }},
			query: []queryParam{
				{name: "op", desc: "register, update, state, revoke or reprovision (required)", schema: map[string]any{"type": "string", "enum": []string{"register", "update", "state", "revoke", "reprovision"}}},
				{name: "template", desc: "provisioning template the devices provision with (required for register)", schema: str},
				{name: "factory", desc: "default factory of the rows", schema: str},
				{name: "model", desc: "default model of the rows", schema: str},
				{name: "owner", desc: "default owner", schema: str},
				{name: "site", desc: "default site", schema: str},
				{name: "batch", desc: "default batch (register)", schema: str},
				{name: "group", desc: "group every row's device gets; repeat for more", schema: str, repeat: true},
				{name: "tag", desc: "tag every row's device gets; repeat for more", schema: str, repeat: true},
				{name: "attr", desc: "key=value attribute every row's device gets; repeat for more", schema: str, repeat: true},
				{name: "state", desc: "target state of a state job for rows that name none", schema: str},
				{name: "reason", desc: "reason recorded with state changes", schema: str},
				{name: "revocationReason", desc: "RFC 5280 reason name of a revoke job (default unspecified)", schema: str},
				{name: "format", desc: "csv or jsonl; default from Content-Type", schema: map[string]any{"type": "string", "enum": []string{"csv", "jsonl"}}},
			}},
		{name: "listJobs", method: "GET", pattern: "/v1/jobs", perm: PermJobsRead, status: http.StatusOK,
			summary: "List bulk jobs, newest first", endpoint: noBody((*Server).listJobs),
			query: []queryParam{
				{name: "status", desc: "uploading, queued, running, done or cancelled", schema: map[string]any{"type": "string", "enum": []string{store.JobUploading, store.JobQueued, store.JobRunning, store.JobDone, store.JobCancelled}}},
				{name: "limit", desc: "page size", schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}},
				{name: "cursor", desc: "nextCursor of the previous page", schema: str},
			}},
		{name: "getJob", method: "GET", pattern: "/v1/jobs/{id}", perm: PermJobsRead, status: http.StatusOK,
			summary: "A bulk job: status and progress", endpoint: noBody((*Server).getJob)},
		{name: "deleteJob", method: "DELETE", pattern: "/v1/jobs/{id}", perm: PermJobsRun, status: http.StatusNoContent,
			summary: "Delete a finished job with its stored manifest and results; the rows it applied stay", endpoint: noContent((*Server).deleteJob)},
		{name: "cancelJob", method: "POST", pattern: "/v1/jobs/{id}/cancel", perm: PermJobsRun, status: http.StatusOK,
			summary: "Cancel a bulk job: at once if queued, before its next chunk if running; applied rows stay", endpoint: withBody((*Server).cancelJob)},
		{name: "jobResults", method: "GET", pattern: "/v1/jobs/{id}/results", perm: PermJobsRead, status: http.StatusOK,
			summary: "Per-row results of a job's applied rows, in row order, as JSON lines or CSV",
			endpoint: endpoint{out: reflect.TypeFor[jobs.RowResult](), lines: true,
				serve: func(s *Server, r *http.Request) (any, error) { return s.jobResults(r) }},
			query: []queryParam{
				{name: "status", desc: "only rows with this status (error, for one)", schema: map[string]any{"type": "string", "enum": []string{jobs.StatusOK, jobs.StatusUnchanged, jobs.StatusError}}},
				{name: "format", desc: "jsonl (default) or csv", schema: map[string]any{"type": "string", "enum": []string{"jsonl", "csv"}}},
			}},
	}
}

// jobPermissions grants this feature's permissions to role r.
func jobPermissions(r Role) []Permission {
	switch r {
	case RoleAdmin, RoleOperator:
		return []Permission{PermJobsRun, PermJobsRead}
	case RoleAuditor:
		return []Permission{PermJobsRead}
	}
	return nil
}

// opPermission is the permission a job's operation needs besides jobs:run:
// the one its single-device route needs.
var opPermission = map[jobs.Op]Permission{
	jobs.OpRegister:    PermDevicesCreate,
	jobs.OpUpdate:      PermDevicesUpdate,
	jobs.OpState:       PermDevicesState,
	jobs.OpRevoke:      PermCertsRevoke,
	jobs.OpReprovision: PermDevicesState,
}

func (s *Server) jobService() (JobService, error) {
	if s.jobs == nil {
		return nil, errorf(http.StatusServiceUnavailable, codeUnavailable, "", "bulk jobs are not available on this server")
	}
	return s.jobs, nil
}

func (s *Server) startJob(r *http.Request) (*store.Job, error) {
	js, err := s.jobService()
	if err != nil {
		return nil, err
	}
	spec, err := jobSpec(r)
	if err != nil {
		return nil, err
	}
	p := principal(r)
	if need := opPermission[spec.Op]; !p.Role.Can(need) {
		return nil, errorf(http.StatusForbidden, codeForbidden, "op", "role %s does not have permission %s, which a %s job needs", p.Role, need, spec.Op)
	}
	format, err := manifestFormat(r)
	if err != nil {
		return nil, err
	}
	return js.Start(r.Context(), spec, r.Body, format, p.Actor())
}

// jobSpec reads a job's spec from the query string.
func jobSpec(r *http.Request) (jobs.Spec, error) {
	q := r.URL.Query()
	op, err := jobs.ParseOp(q.Get("op"))
	if err != nil {
		return jobs.Spec{}, queryError("op", "%v", err)
	}
	spec := jobs.Spec{Op: op, Template: q.Get("template"), State: fleet.State(q.Get("state")), Reason: q.Get("reason"),
		RevocationReason: q.Get("revocationReason"),
		Defaults: jobs.Defaults{Factory: q.Get("factory"), Model: q.Get("model"), Owner: q.Get("owner"), Site: q.Get("site"),
			Batch: q.Get("batch"), Groups: q["group"], Tags: q["tag"]}}
	for _, kv := range q["attr"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return jobs.Spec{}, queryError("attr", "attribute %q is not key=value", kv)
		}
		if spec.Defaults.Attributes == nil {
			spec.Defaults.Attributes = map[string]string{}
		}
		spec.Defaults.Attributes[k] = v
	}
	if err := spec.Validate(); err != nil {
		var fe *fleet.FieldError
		if errors.As(err, &fe) {
			return jobs.Spec{}, queryError(fe.Field, "%s", fe.Message)
		}
		return jobs.Spec{}, err
	}
	return spec, nil
}

// jobPage is one page of GET /v1/jobs.
type jobPage struct {
	Items []store.Job `json:"items"`
	// NextCursor is empty on the last page.
	NextCursor string `json:"nextCursor"`
}

func (s *Server) listJobs(r *http.Request) (jobPage, error) {
	js, err := s.jobService()
	if err != nil {
		return jobPage{}, err
	}
	q := r.URL.Query()
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return jobPage{}, err
	}
	items, err := js.List(r.Context(), q.Get("status"), q.Get("cursor"), limit+1)
	if err != nil {
		return jobPage{}, err
	}
	page := jobPage{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = items[limit-1].ID
	}
	return page, nil
}

func (s *Server) getJob(r *http.Request) (*store.Job, error) {
	js, err := s.jobService()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	j, err := js.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("job", id)
	}
	return j, err
}

// CancelJobRequest is the body of POST /v1/jobs/{id}/cancel.
type CancelJobRequest struct {
	// Reason goes to the fleet audit log with the caller.
	Reason string `json:"reason,omitempty"`
}

func (s *Server) deleteJob(r *http.Request) error {
	js, err := s.jobService()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	err = js.Delete(r.Context(), id, principal(r).Actor())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("job", id)
	case errors.Is(err, store.ErrJobUnfinished):
		return errorf(http.StatusConflict, codeInvalidTransition, "", "job %s has not finished: cancel it first (muster jobs cancel %s)", id, id)
	}
	return err
}

func (s *Server) cancelJob(r *http.Request, req *CancelJobRequest) (*store.Job, error) {
	js, err := s.jobService()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	j, err := js.Cancel(r.Context(), id, principal(r).Actor(), req.Reason)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("job", id)
	}
	return j, err
}

// resultsStream answers GET /v1/jobs/{id}/results.
type resultsStream struct {
	js         JobService
	id         string
	csv        bool
	errorsOnly bool
	log        func(ctx context.Context, msg string, args ...any)
}

func (s *Server) jobResults(r *http.Request) (responseStream, error) {
	js, err := s.jobService()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	st := &resultsStream{js: js, id: r.PathValue("id"), log: s.log.ErrorContext}
	switch q.Get("format") {
	case "", "jsonl":
	case "csv":
		st.csv = true
	default:
		return nil, queryError("format", "format %q is not jsonl or csv", q.Get("format"))
	}
	switch status := q.Get("status"); status {
	case "":
	case jobs.StatusError:
		st.errorsOnly = true
	default:
		return nil, queryError("status", "only status=error filters results; leave it out for all rows")
	}
	// A missing job is a 404 before the answer starts.
	if _, err := js.Get(r.Context(), st.id); errors.Is(err, store.ErrNotFound) {
		return nil, notFound("job", st.id)
	} else if err != nil {
		return nil, err
	}
	return st, nil
}

// resultColumns are the CSV columns of job results.
var resultColumns = []string{"row", "line", "serial", "device_id", "status", "code", "message"}

func (st *resultsStream) writeTo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	bw := bufio.NewWriterSize(w, responseFlushEvery)
	var write func(*jobs.RowResult) error
	if st.csv {
		w.Header().Set("Content-Type", "text/csv")
		cw := csv.NewWriter(bw)
		_ = cw.Write(resultColumns)
		write = func(res *jobs.RowResult) error {
			err := cw.Write([]string{strconv.FormatInt(res.Row, 10), strconv.Itoa(res.Line), res.Serial, res.DeviceID, res.Status, res.Code, res.Message})
			cw.Flush()
			return err
		}
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(bw)
		write = func(res *jobs.RowResult) error { return enc.Encode(res) }
	}
	w.WriteHeader(http.StatusOK)
	if err := st.js.Results(ctx, st.id, st.errorsOnly, write); err != nil && ctx.Err() == nil {
		// The status is sent; cutting the answer short tells the client.
		st.log(ctx, "job results stopped", "job", st.id, "err", err)
		panic(http.ErrAbortHandler)
	}
	_ = bw.Flush()
}
