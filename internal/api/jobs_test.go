package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/store"
)

// runJobs runs a job runner over h's store until the test ends.
func (h *harness) runJobs(t *testing.T) {
	t.Helper()
	m, err := lease.New(lease.Config{Store: h.st, Node: "api-test", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = jobs.NewRunner(jobs.Config{Store: h.st, ChunkRows: 2}, m, 10*time.Millisecond).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (h *harness) waitJob(t *testing.T, id string) store.Job {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		j := call[store.Job](h, request{caller: "auditor", method: "GET", path: "/v1/jobs/" + id}, http.StatusOK)
		if j.Finished() {
			return j
		}
	}
	t.Fatalf("job %s did not finish", id)
	return store.Job{}
}

func (h *harness) jobCount(t *testing.T) int {
	t.Helper()
	js, err := h.st.ListJobs(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(js)
}

func TestJobsAPI(t *testing.T) {
	h := newHarness(t)
	h.runJobs(t)
	tmpl := h.template()
	csv := "serial,owner,attr.site\n" +
		"SN-J1,acme,lyon\n" +
		"SN-J2,acme,paris\n" +
		"SN-J3,\"broken\n" +
		"bad serial,acme,x\n"
	path := fmt.Sprintf("/v1/jobs?op=register&template=%s&factory=%s&model=%s&group=g1&attr=tier%%3Dpro", tmpl, factory1, testModel)
	j := call[store.Job](h, request{caller: "operator", method: "POST", path: path, body: csv, header: map[string]string{"Content-Type": "text/csv"}}, http.StatusCreated)
	if j.Status != store.JobQueued || j.Rows != 4 || j.Op != "register" || j.CreatedBy != "operator/operator-token" {
		t.Fatalf("started job: %+v", j)
	}
	j = h.waitJob(t, j.ID)
	if j.Status != store.JobDone || j.OK != 2 || j.Errors != 2 {
		t.Fatalf("finished job: %+v", j)
	}

	// Results as JSON lines, errors only, and CSV.
	w := h.do(request{caller: "auditor", method: "GET", path: "/v1/jobs/" + j.ID + "/results"})
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" || len(lines) != 4 {
		t.Fatalf("results: %d %s", w.Code, w.Body)
	}
	var first jobs.RowResult
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Status != jobs.StatusOK || first.Serial != "SN-J1" || first.DeviceID == "" {
		t.Fatalf("first result %+v, %v", first, err)
	}
	d := call[map[string]any](h, request{caller: "auditor", method: "GET", path: "/v1/devices/" + first.DeviceID}, http.StatusOK)
	if attrs := d["attributes"].(map[string]any); attrs["tier"] != "pro" || attrs["site"] != "lyon" || attrs["muster.template"] != tmpl {
		t.Fatalf("registered device attributes: %v", attrs)
	}
	w = h.do(request{caller: "admin", method: "GET", path: "/v1/jobs/" + j.ID + "/results?status=error&format=csv"})
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.HasPrefix(body, "row,line,serial,device_id,status,code,message\n") || strings.Count(body, "\n") != 3 || !strings.Contains(body, "bad serial") {
		t.Fatalf("CSV error results: %d %q", w.Code, body)
	}

	// Listing, newest first, paginated.
	second := call[store.Job](h, request{caller: "admin", method: "POST", path: "/v1/jobs?op=state&state=pending&format=jsonl",
		body: fmt.Sprintf(`{"id":%q}`+"\n", first.DeviceID)}, http.StatusCreated)
	page := call[jobPage](h, request{caller: "auditor", method: "GET", path: "/v1/jobs?limit=1"}, http.StatusOK)
	if len(page.Items) != 1 || page.Items[0].ID != second.ID || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	page = call[jobPage](h, request{caller: "auditor", method: "GET", path: "/v1/jobs?limit=1&cursor=" + page.NextCursor}, http.StatusOK)
	if len(page.Items) != 1 || page.Items[0].ID != j.ID || page.NextCursor != "" {
		t.Fatalf("second page: %+v", page)
	}
	if second = h.waitJob(t, second.ID); second.OK != 1 {
		t.Fatalf("state job: %+v", second)
	}

	// Cancelling a finished job changes nothing.
	if c := call[store.Job](h, request{caller: "operator", method: "POST", path: "/v1/jobs/" + j.ID + "/cancel", body: CancelJobRequest{}}, http.StatusOK); c.Status != store.JobDone {
		t.Fatalf("cancel a done job: %+v", c)
	}

	// A finished job can be deleted with its manifest and results; the
	// rows it applied stay. An unfinished one is refused, unchanged.
	queued := h.queuedJob()
	if w := h.do(request{caller: "operator", method: "DELETE", path: "/v1/jobs/" + queued.ID}); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "cancel it first") {
		t.Fatalf("delete a queued job: %d %s", w.Code, w.Body)
	}
	if got, err := h.st.GetJob(context.Background(), queued.ID); err != nil || got.Status != store.JobQueued {
		t.Fatalf("the refused delete changed the job: %+v, %v", got, err)
	}
	if w := h.do(request{caller: "auditor", method: "DELETE", path: "/v1/jobs/" + j.ID}); w.Code != http.StatusForbidden {
		t.Fatalf("auditor deletes a job: %d", w.Code)
	}
	if w := h.do(request{caller: "operator", method: "DELETE", path: "/v1/jobs/" + j.ID}); w.Code != http.StatusNoContent {
		t.Fatalf("delete a done job: %d %s", w.Code, w.Body)
	}
	if w := h.do(request{caller: "operator", method: "GET", path: "/v1/jobs/" + j.ID}); w.Code != http.StatusNotFound {
		t.Fatalf("a deleted job is still there: %d", w.Code)
	}
	if w := h.do(request{caller: "operator", method: "DELETE", path: "/v1/jobs/" + j.ID}); w.Code != http.StatusNotFound {
		t.Fatalf("delete it again: %d", w.Code)
	}
}

// TestJobsAPIRefusals: what a caller may not do, and input that cannot
// make a job, is refused with a clear error and stores nothing.
func TestJobsAPIRefusals(t *testing.T) {
	h := newHarness(t)
	tmpl := h.template()
	row := `{"serial":"SN-R1"}` + "\n"
	ok := fmt.Sprintf("/v1/jobs?op=register&template=%s&factory=%s&model=%s&format=jsonl", tmpl, factory1, testModel)
	for _, c := range []struct {
		name, caller, path, body, contentType string
		status                                int
		code, field                           string
	}{
		{"auditor starts", "auditor", ok, row, "", http.StatusForbidden, codeForbidden, ""},
		{"manufacturer starts", "manufacturer", ok, row, "", http.StatusForbidden, codeForbidden, ""},
		{"installer starts", "installer", ok, row, "", http.StatusForbidden, codeForbidden, ""},
		{"no token", callerNone, ok, row, "", http.StatusUnauthorized, codeUnauthorized, ""},
		{"no op", "admin", "/v1/jobs?format=jsonl", row, "", http.StatusBadRequest, codeBadQuery, "op"},
		{"unknown op", "admin", "/v1/jobs?op=melt&format=jsonl", row, "", http.StatusBadRequest, codeBadQuery, "op"},
		{"register without template", "admin", "/v1/jobs?op=register&format=jsonl", row, "", http.StatusBadRequest, codeBadQuery, "template"},
		{"unknown template", "admin", "/v1/jobs?op=register&template=ghost&format=jsonl", row, "", http.StatusBadRequest, codeValidationFailed, "template"},
		{"attr without value", "admin", ok + "&attr=novalue", row, "", http.StatusBadRequest, codeBadQuery, "attr"},
		{"decommission", "admin", "/v1/jobs?op=state&state=decommissioned&format=jsonl", row, "", http.StatusBadRequest, codeBadQuery, "state"},
		{"unknown query parameter", "admin", ok + "&colour=red", row, "", http.StatusBadRequest, codeBadQuery, "colour"},
		{"unknown CSV column", "admin", strings.Replace(ok, "jsonl", "csv", 1), "serial,colour\nSN-1,red\n", "", http.StatusBadRequest, codeValidationFailed, "manifest"},
		{"empty manifest", "admin", ok, "", "", http.StatusBadRequest, codeValidationFailed, "manifest"},
		{"no format", "admin", strings.TrimSuffix(ok, "&format=jsonl"), row, "application/json", http.StatusUnsupportedMediaType, codeUnsupportedMedia, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rq := request{caller: c.caller, method: "POST", path: c.path, body: c.body}
			if c.contentType != "" {
				rq.header = map[string]string{"Content-Type": c.contentType}
			}
			w := h.do(rq)
			e := errorOf(t, w)
			if w.Code != c.status || e.Code != c.code || (c.field != "" && e.Field != c.field) || e.Message == "" {
				t.Fatalf("status %d %+v, want %d %s on %q", w.Code, e, c.status, c.code, c.field)
			}
			if n := h.jobCount(t); n != 0 {
				t.Fatalf("%d jobs stored after a refused start", n)
			}
		})
	}

	j := h.queuedJob()
	for _, c := range []struct {
		name, caller, method, path string
		status                     int
	}{
		{"manufacturer reads", "manufacturer", "GET", "/v1/jobs/" + j.ID, http.StatusForbidden},
		{"installer lists", "installer", "GET", "/v1/jobs", http.StatusForbidden},
		{"auditor cancels", "auditor", "POST", "/v1/jobs/" + j.ID + "/cancel", http.StatusForbidden},
		{"manufacturer results", "manufacturer", "GET", "/v1/jobs/" + j.ID + "/results", http.StatusForbidden},
		{"unknown job", "admin", "GET", "/v1/jobs/job_nope", http.StatusNotFound},
		{"unknown job's results", "admin", "GET", "/v1/jobs/job_nope/results", http.StatusNotFound},
		{"cancel unknown job", "admin", "POST", "/v1/jobs/job_nope/cancel", http.StatusNotFound},
		{"results as XML", "admin", "GET", "/v1/jobs/" + j.ID + "/results?format=xml", http.StatusBadRequest},
		{"results of ok rows only", "admin", "GET", "/v1/jobs/" + j.ID + "/results?status=ok", http.StatusBadRequest},
		{"list with limit 0", "admin", "GET", "/v1/jobs?limit=0", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.method == "POST" {
				body = CancelJobRequest{Reason: "test"}
			}
			w := h.do(request{caller: c.caller, method: c.method, path: c.path, body: body})
			if e := errorOf(t, w); w.Code != c.status || e.Message == "" {
				t.Fatalf("status %d %+v, want %d", w.Code, e, c.status)
			}
		})
	}
	if got, _ := h.st.GetJob(context.Background(), j.ID); got.Status != store.JobQueued || got.CancelRequested {
		t.Fatalf("a refused cancel changed the job: %+v", got)
	}
}
