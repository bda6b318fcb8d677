package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store"
)

// jobsAccess and jobsContractPermissions transcribe this feature's rows of
// docs/api-contract.md (see rbac_test.go).
var (
	jobsAccess = map[string]string{
		"startJob":   "admin operator",
		"listJobs":   "admin operator auditor",
		"getJob":     "admin operator auditor",
		"cancelJob":  "admin operator",
		"deleteJob":  "admin operator",
		"jobResults": "admin operator auditor",
	}
	jobsContractPermissions = map[Permission]string{
		PermJobsRun:  "admin operator",
		PermJobsRead: "admin operator auditor",
	}
)

// jobsFixture prepares a call of a jobs route for TestRBAC: a manifest that
// queues an update job, or a queued job to read or cancel.
func jobsFixture(t *testing.T, h *harness, rt route) (path string, body any, ok bool) {
	t.Helper()
	switch rt.name {
	case "startJob":
		d := h.newDevice(factory1)
		return rt.pattern + "?op=update&format=jsonl&owner=rbac", fmt.Sprintf(`{"id":%q}`+"\n", d.ID), true
	case "getJob", "jobResults":
		j := h.queuedJob()
		return strings.Replace(rt.pattern, "{id}", j.ID, 1), nil, true
	case "deleteJob":
		// A finished job: a queued one cancelled.
		j := h.queuedJob()
		if _, err := h.st.CancelJob(context.Background(), j.ID, "admin/test", "rbac"); err != nil {
			t.Fatal(err)
		}
		return strings.Replace(rt.pattern, "{id}", j.ID, 1), nil, true
	case "cancelJob":
		j := h.queuedJob()
		return strings.Replace(rt.pattern, "{id}", j.ID, 1), map[string]string{"reason": "rbac"}, true
	}
	return "", nil, false
}

// queuedJob stores a one-row update job, straight through the service.
func (h *harness) queuedJob() *store.Job {
	h.t.Helper()
	d := h.newDevice(factory1)
	svc := jobs.NewService(jobs.Config{Store: h.st})
	j, err := svc.Start(context.Background(), jobs.Spec{Op: jobs.OpUpdate, Defaults: jobs.Defaults{Owner: "fixture"}},
		strings.NewReader(fmt.Sprintf(`{"id":%q}`+"\n", d.ID)), mfg.FormatJSONL, "admin/test")
	if err != nil {
		h.t.Fatalf("queue a job: %v", err)
	}
	return j
}
