package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The configuration audit and vulnerability scanning (docs/audit.md).

// AuditCheck is one check of the configuration audit.
type AuditCheck struct {
	ID          string `json:"id"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// AuditChecks lists the checks and the thresholds the server uses.
type AuditChecks struct {
	Checks []AuditCheck   `json:"checks"`
	Params map[string]any `json:"params"`
}

// AuditRun is one run of the configuration audit.
type AuditRun struct {
	ID         string      `json:"id"`
	Slot       string      `json:"slot,omitempty"`
	Kind       string      `json:"kind"`
	Actor      string      `json:"actor"`
	Node       string      `json:"node"`
	Status     string      `json:"status"`
	Checks     []string    `json:"checks"`
	StartedAt  time.Time   `json:"startedAt"`
	FinishedAt *time.Time  `json:"finishedAt,omitempty"`
	Counts     AuditCounts `json:"counts"`
	// Progress is how far the run got, as of its last report.
	Progress AuditProgress `json:"progress"`
	Error    string        `json:"error,omitempty"`
}

// Audit run statuses.
const (
	AuditRunning = "running"
	AuditDone    = "done"
	AuditFailed  = "failed"
)

// AuditProgress is what a run has examined so far. Runs report it at
// intervals (about a second), so it lags the run a little.
type AuditProgress struct {
	// ChecksDone counts the finished checks; Check is the one running
	// now, empty before the first and while the findings are recorded.
	ChecksDone   int    `json:"checksDone"`
	Check        string `json:"check,omitempty"`
	Devices      int64  `json:"devices"`
	Certificates int64  `json:"certificates"`
	MeterRows    int64  `json:"meterRows"`
	Histories    int64  `json:"histories"`
	// Findings is how many findings the checks reported so far.
	Findings  int       `json:"findings"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// AuditCounts sums up what a run found: its findings, how many were new
// and how many it resolved, and the open and suppressed totals after it.
type AuditCounts struct {
	Findings   int            `json:"findings"`
	New        int            `json:"new"`
	Resolved   int            `json:"resolved"`
	Open       int            `json:"open"`
	Suppressed int            `json:"suppressed"`
	BySeverity map[string]int `json:"bySeverity,omitempty"`
}

// Finding is one problem a check found with one subject. Key is stable
// across runs.
type Finding struct {
	Key         string          `json:"key"`
	Check       string          `json:"check"`
	Severity    string          `json:"severity"`
	SubjectKind string          `json:"subjectKind"`
	Subject     string          `json:"subject"`
	DeviceID    string          `json:"deviceId,omitempty"`
	State       string          `json:"state"`
	Message     string          `json:"message"`
	Fix         string          `json:"fix"`
	Evidence    json.RawMessage `json:"evidence,omitempty"`
	FirstSeen   time.Time       `json:"firstSeen"`
	LastSeen    time.Time       `json:"lastSeen"`
	ResolvedAt  *time.Time      `json:"resolvedAt,omitempty"`
	FirstRun    string          `json:"firstRun"`
	LastRun     string          `json:"lastRun"`
	Suppression *Suppression    `json:"suppression,omitempty"`
}

// Suppression silences a finding until it expires.
type Suppression struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	Until  time.Time `json:"until"`
}

// FindingFilter selects findings; empty fields match anything. State is
// open, suppressed or resolved.
type FindingFilter struct {
	Severity string
	Check    string
	DeviceID string
	State    string
}

func (f FindingFilter) encode(q url.Values) {
	for k, v := range map[string]string{"severity": f.Severity, "check": f.Check, "device": f.DeviceID, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
}

// Advisory is an imported OSV advisory.
type Advisory struct {
	ID         string            `json:"id"`
	Modified   time.Time         `json:"modified"`
	Summary    string            `json:"summary,omitempty"`
	Source     string            `json:"source"`
	ImportedAt time.Time         `json:"importedAt"`
	ImportedBy string            `json:"importedBy"`
	Packages   []AdvisoryPackage `json:"packages"`
}

// AdvisoryPackage is a package an advisory affects.
type AdvisoryPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// AdvisoryFile is one OSV record to import, with the file it came from.
type AdvisoryFile struct {
	Source string          `json:"source"`
	Record json.RawMessage `json:"record"`
}

// AdvisoryImport is what an import changed.
type AdvisoryImport struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

// DeviceVulns is what one device runs that advisories affect.
type DeviceVulns struct {
	DeviceID string      `json:"deviceId"`
	Matches  []VulnMatch `json:"matches"`
}

// VulnMatch is one advisory affecting one piece of a device's software.
type VulnMatch struct {
	AdvisoryID string       `json:"advisoryId"`
	Aliases    []string     `json:"aliases,omitempty"`
	Summary    string       `json:"summary,omitempty"`
	Component  VulnSoftware `json:"component"`
	Fixed      []string     `json:"fixed,omitempty"`
}

// VulnSoftware is a piece of software a device runs: a firmware version
// (Source "firmware") or a BOM component (Source "sbom").
type VulnSoftware struct {
	Ecosystem string `json:"ecosystem,omitempty"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Source    string `json:"source,omitempty"`
}

// AuditChecks returns the audit's checks and thresholds.
func (c *Client) AuditChecks(ctx context.Context) (*AuditChecks, error) {
	return fetch[AuditChecks](ctx, c, call{method: http.MethodGet, path: "/v1/audit/checks"})
}

// StartAudit starts the configuration audit, all checks or those named,
// and returns the run at once, running: the server runs it in the
// background. Follow it with AuditRun or WaitAudit. A node runs one audit
// at a time; while it runs one, StartAudit fails with 409 audit_busy
// naming it. It is never retried on a transport failure: a retry could
// start a second run.
func (c *Client) StartAudit(ctx context.Context, checks []string) (*AuditRun, error) {
	return fetch[AuditRun](ctx, c, call{method: http.MethodPost, path: "/v1/audit/runs", body: map[string]any{"checks": checks}})
}

// Bounds of WaitAudit's polling: it starts fast, since small fleets
// audit in well under a second, and backs off to a poll every few
// seconds for runs that take minutes.
const (
	auditPollFirst = 100 * time.Millisecond
	auditPollMax   = 5 * time.Second
)

// WaitAudit polls run id until it is done or failed, or ctx ends, and
// returns it as it ended; a failed run is returned as it is, with its
// Error, and no error. progress, when not nil, is called with each poll's
// run, running or not.
func (c *Client) WaitAudit(ctx context.Context, id string, progress func(*AuditRun)) (*AuditRun, error) {
	wait := auditPollFirst
	for {
		run, err := c.AuditRun(ctx, id)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(run)
		}
		if run.Status != AuditRunning {
			return run, nil
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("waiting for audit run %s: %w", id, err)
		}
		wait = min(wait*2, auditPollMax)
	}
}

// RunAudit starts the configuration audit and waits for it: StartAudit
// then WaitAudit. A run that failed is returned with its Error.
func (c *Client) RunAudit(ctx context.Context, checks []string) (*AuditRun, error) {
	run, err := c.StartAudit(ctx, checks)
	if err != nil {
		return nil, err
	}
	return c.WaitAudit(ctx, run.ID, nil)
}

// AuditRuns returns the latest limit runs (0: the server's default of
// 20), newest first.
func (c *Client) AuditRuns(ctx context.Context, limit int) ([]AuditRun, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out items[AuditRun]
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/runs", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// AuditRun returns one run.
func (c *Client) AuditRun(ctx context.Context, id string) (*AuditRun, error) {
	return fetch[AuditRun](ctx, c, call{method: http.MethodGet, path: "/v1/audit/runs/" + url.PathEscape(id)})
}

// ListFindings returns one page of findings matching filter, in key order.
func (c *Client) ListFindings(ctx context.Context, filter FindingFilter, opts ListOptions) (*Page[Finding], error) {
	q := url.Values{}
	filter.encode(q)
	opts.encode(q)
	return fetch[Page[Finding]](ctx, c, call{method: http.MethodGet, path: "/v1/audit/findings", query: q})
}

// Findings iterates over every finding matching filter.
func (c *Client) Findings(ctx context.Context, filter FindingFilter) iter.Seq2[*Finding, error] {
	return iteratePages(ctx, func(ctx context.Context, cursor string) (*Page[Finding], error) {
		return c.ListFindings(ctx, filter, ListOptions{Limit: 1000, Cursor: cursor})
	})
}

// Finding returns one finding by key.
func (c *Client) Finding(ctx context.Context, key string) (*Finding, error) {
	return fetch[Finding](ctx, c, call{method: http.MethodGet, path: "/v1/audit/findings/" + url.PathEscape(key)})
}

// SuppressFinding silences a finding until expiresAt, with a reason; the
// suppression is recorded in the fleet audit log.
func (c *Client) SuppressFinding(ctx context.Context, key, reason string, expiresAt time.Time) (*Finding, error) {
	var out Finding
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/audit/findings/" + url.PathEscape(key) + "/suppress",
		body: map[string]any{"reason": reason, "expiresAt": expiresAt.UTC().Format(time.RFC3339)}}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportAdvisories imports OSV records in one transaction; with replace,
// stored advisories not among them are removed.
func (c *Client) ImportAdvisories(ctx context.Context, files []AdvisoryFile, replace bool) (*AdvisoryImport, error) {
	var out AdvisoryImport
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/advisories", body: map[string]any{"advisories": files, "replace": replace}}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Advisories returns the imported advisories.
func (c *Client) Advisories(ctx context.Context) ([]Advisory, error) {
	return list[Advisory](ctx, c, "/v1/advisories")
}

// Vulnerabilities matches the fleet (or one device, when deviceID is set)
// against the imported advisories now and returns the affected devices.
func (c *Client) Vulnerabilities(ctx context.Context, deviceID string) ([]DeviceVulns, error) {
	q := url.Values{}
	if deviceID != "" {
		q.Set("device", deviceID)
	}
	var out items[DeviceVulns]
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/vulnerabilities", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}
