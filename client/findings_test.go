package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStartAndWaitAudit: StartAudit returns the accepted run at once;
// WaitAudit polls it until it ends, reporting each poll; RunAudit does
// both. A failed run is returned with its reason and no error.
func TestStartAndWaitAudit(t *testing.T) {
	var polls atomic.Int32
	var posts atomic.Int32
	final := AuditDone
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/audit/runs":
			posts.Add(1)
			polls.Store(0)
			w.Header().Set("Location", "/v1/audit/runs/aud_1")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(AuditRun{ID: "aud_1", Status: AuditRunning, Checks: []string{"weak-key"}})
		case r.Method == http.MethodGet && r.URL.Path == "/v1/audit/runs/aud_1":
			run := AuditRun{ID: "aud_1", Status: AuditRunning, Checks: []string{"weak-key"}}
			if n := polls.Add(1); n >= 3 {
				run.Status, run.Counts.Findings, run.Progress.ChecksDone = final, 2, 1
				if final == AuditFailed {
					run.Error = "node stopping"
				}
			}
			_ = json.NewEncoder(w).Encode(run)
		default:
			writeError(w, http.StatusNotFound, "not_found", r.URL.Path)
		}
	})
	ctx := context.Background()
	run, err := c.StartAudit(ctx, []string{"weak-key"})
	if err != nil || run.ID != "aud_1" || run.Status != AuditRunning || polls.Load() != 0 {
		t.Fatalf("StartAudit = %+v, %v (polls %d)", run, err, polls.Load())
	}
	var seen []string
	done, err := c.WaitAudit(ctx, run.ID, func(r *AuditRun) { seen = append(seen, r.Status) })
	if err != nil || done.Status != AuditDone || done.Counts.Findings != 2 || done.Progress.ChecksDone != 1 {
		t.Fatalf("WaitAudit = %+v, %v", done, err)
	}
	if strings.Join(seen, ",") != "running,running,done" {
		t.Errorf("progress saw %v", seen)
	}
	final = AuditFailed
	failed, err := c.RunAudit(ctx, nil)
	if err != nil || failed.Status != AuditFailed || failed.Error != "node stopping" || posts.Load() != 2 {
		t.Errorf("RunAudit of a failing run = %+v, %v", failed, err)
	}
}

// TestWaitAuditHonoursContext: WaitAudit stops when its context ends, and
// reports an unknown run at once.
func TestWaitAuditHonoursContext(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audit/runs/aud_1" {
			writeError(w, http.StatusNotFound, "not_found", "no audit run "+r.URL.Path)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(AuditRun{ID: "aud_1", Status: AuditRunning})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.WaitAudit(ctx, "aud_1", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitAudit past its deadline = %v", err)
	}
	var apiErr *APIError
	if _, err := c.WaitAudit(context.Background(), "aud_nope", nil); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("WaitAudit of an unknown run = %v", err)
	}
}
