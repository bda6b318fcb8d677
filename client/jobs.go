package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Job operations.
const (
	JobRegister    = "register"
	JobUpdate      = "update"
	JobState       = "state"
	JobRevoke      = "revoke"
	JobReprovision = "reprovision"
)

// Job statuses.
const (
	JobUploading = "uploading"
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobCancelled = "cancelled"
)

// Job result statuses.
const (
	JobRowOK        = "ok"
	JobRowUnchanged = "unchanged"
	JobRowError     = "error"
)

// JobOptions say what a bulk job does to each row of its manifest.
type JobOptions struct {
	// Op is register, update, state, revoke or reprovision (required).
	Op string
	// Format of the manifest (required).
	Format ManifestFormat
	// Template is the provisioning template registered devices provision
	// with (required for register; for reprovision, switches devices to it).
	Template string
	// Defaults for rows that leave them empty; Groups, Tags and Attributes
	// are merged with each row's.
	Factory, Model, Owner, Site, Batch string
	Groups, Tags                       []string
	Attributes                         map[string]string
	// State is the target of a state job for rows that name none; Reason
	// is recorded with each change.
	State, Reason string
	// RevocationReason is an RFC 5280 reason name for revoke jobs.
	RevocationReason string
}

// Job is a bulk job's record: its status and progress.
type Job struct {
	ID              string          `json:"id"`
	Op              string          `json:"op"`
	Spec            json.RawMessage `json:"spec"`
	Status          string          `json:"status"`
	Format          string          `json:"format"`
	ManifestSHA256  string          `json:"manifestSha256"`
	Rows            int64           `json:"rows"`
	Chunks          int64           `json:"chunks"`
	ChunksDone      int64           `json:"chunksDone"`
	OK              int64           `json:"ok"`
	Unchanged       int64           `json:"unchanged"`
	Errors          int64           `json:"errors"`
	CancelRequested bool            `json:"cancelRequested"`
	Node            string          `json:"node,omitempty"`
	CreatedAt       time.Time       `json:"createdAt"`
	CreatedBy       string          `json:"createdBy"`
	UpdatedAt       time.Time       `json:"updatedAt"`
	StartedAt       *time.Time      `json:"startedAt,omitempty"`
	FinishedAt      *time.Time      `json:"finishedAt,omitempty"`
}

// Done is how many rows were applied so far (ok, unchanged or error).
func (j *Job) Done() int64 { return j.OK + j.Unchanged + j.Errors }

// Finished reports whether the job will change nothing more.
func (j *Job) Finished() bool { return j.Status == JobDone || j.Status == JobCancelled }

// JobResult is the outcome of one manifest row.
type JobResult struct {
	Row      int64  `json:"row"`
	Line     int    `json:"line"`
	Serial   string `json:"serial,omitempty"`
	DeviceID string `json:"deviceId,omitempty"`
	Status   string `json:"status"`
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
}

// StartJob uploads a manifest, streamed, and queues the job; a runner on
// some node applies it. It returns the queued job. The manifest is read
// once, so the request is never retried; starting the same manifest again
// is safe: rows already applied come out unchanged.
func (c *Client) StartJob(ctx context.Context, manifest io.Reader, opts JobOptions) (*Job, error) {
	contentType := map[ManifestFormat]string{FormatCSV: "text/csv", FormatJSONL: "application/x-ndjson"}[opts.Format]
	if contentType == "" {
		return nil, fmt.Errorf("manifest format %q: want %s or %s", opts.Format, FormatCSV, FormatJSONL)
	}
	q := url.Values{}
	for k, v := range map[string]string{"op": opts.Op, "template": opts.Template, "factory": opts.Factory, "model": opts.Model,
		"owner": opts.Owner, "site": opts.Site, "batch": opts.Batch, "state": opts.State, "reason": opts.Reason,
		"revocationReason": opts.RevocationReason} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q["group"], q["tag"] = opts.Groups, opts.Tags
	for _, k := range slices.Sorted(maps.Keys(opts.Attributes)) {
		q.Add("attr", k+"="+opts.Attributes[k])
	}
	return fetch[Job](ctx, c, call{method: http.MethodPost, path: "/v1/jobs", query: q, stream: manifest, contentType: contentType})
}

// GetJob returns a job with its progress.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	return fetch[Job](ctx, c, call{method: http.MethodGet, path: "/v1/jobs/" + url.PathEscape(id)})
}

// DeleteJob deletes a finished job with its stored manifest and results;
// the rows it applied stay applied. An unfinished job is refused (409):
// cancel it first.
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/jobs/" + url.PathEscape(id)}, nil)
}

// CancelJob cancels a job: at once when it has not started, before its
// next chunk otherwise. Rows applied stay applied.
func (c *Client) CancelJob(ctx context.Context, id, reason string) (*Job, error) {
	return fetch[Job](ctx, c, call{method: http.MethodPost, path: "/v1/jobs/" + url.PathEscape(id) + "/cancel", body: map[string]string{"reason": reason}})
}

// ListJobs returns one page of jobs, newest first, of the given status when
// status is not empty.
func (c *Client) ListJobs(ctx context.Context, status string, opts ListOptions) (*Page[Job], error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	opts.encode(q)
	return fetch[Page[Job]](ctx, c, call{method: http.MethodGet, path: "/v1/jobs", query: q})
}

// Jobs iterates over every job, newest first, fetching pages as needed.
func (c *Client) Jobs(ctx context.Context, status string) iter.Seq2[*Job, error] {
	return iteratePages(ctx, func(ctx context.Context, cursor string) (*Page[Job], error) {
		return c.ListJobs(ctx, status, ListOptions{Cursor: cursor})
	})
}

// JobResults calls fn with the result of every applied row of a job, in
// row order, as the server streams them; errorsOnly asks for failed rows
// only.
func (c *Client) JobResults(ctx context.Context, id string, errorsOnly bool, fn func(JobResult) error) error {
	q := url.Values{}
	if errorsOnly {
		q.Set("status", JobRowError)
	}
	resp, err := c.send(ctx, call{method: http.MethodGet, path: "/v1/jobs/" + url.PathEscape(id) + "/results", query: q, accept: "application/x-ndjson"}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	for rows := 0; ; rows++ {
		var r JobResult
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("job %s: reading results after %d rows: %w", id, rows, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}
