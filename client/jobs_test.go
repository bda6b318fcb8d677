package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
)

// TestJobs drives the jobs routes through the SDK against the real API and
// a job runner: start, follow, results (all and errors only), list, cancel.
func TestJobs(t *testing.T) {
	r := startRealAPI(t)
	ctx := context.Background()
	c := r.admin
	if _, err := c.CreateTemplate(ctx, []byte(`{"name":"sdk","models":["m1"]}`)); err != nil {
		t.Fatal(err)
	}
	opts := JobOptions{Op: JobRegister, Format: FormatCSV, Template: "sdk", Factory: "acme", Model: "m1",
		Groups: []string{"g1"}, Attributes: map[string]string{"tier": "pro"}}
	manifest := "serial,owner\nSDK-1,acme\nSDK-2,acme\nbad serial,acme\n"
	queued, err := c.StartJob(ctx, strings.NewReader(manifest), opts)
	if err != nil || queued.Status != JobQueued || queued.Rows != 3 {
		t.Fatalf("StartJob: %+v, %v", queued, err)
	}
	// A second, cancelled before any runner sees it.
	other, err := c.StartJob(ctx, strings.NewReader("serial\nSDK-9\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if cj, err := c.CancelJob(ctx, other.ID, "wrong manifest"); err != nil || cj.Status != JobCancelled {
		t.Fatalf("CancelJob: %+v, %v", cj, err)
	}

	m, err := lease.New(lease.Config{Store: r.st, Node: "sdk-test"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = jobs.NewRunner(jobs.Config{Store: r.st}, m, 10*time.Millisecond).Run(rctx)
	}()
	defer func() { stop(); <-done }()

	var j *Job
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if j, err = c.GetJob(ctx, queued.ID); err != nil {
			t.Fatal(err)
		}
		if j.Finished() || time.Now().After(deadline) {
			break
		}
	}
	if j.Status != JobDone || j.OK != 2 || j.Errors != 1 || j.Done() != 3 {
		t.Fatalf("finished job: %+v", j)
	}
	var all, failed []JobResult
	if err := c.JobResults(ctx, j.ID, false, func(r JobResult) error { all = append(all, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.JobResults(ctx, j.ID, true, func(r JobResult) error { failed = append(failed, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Status != JobRowOK || all[0].DeviceID == "" || len(failed) != 1 || failed[0].Row != 3 || failed[0].Code != "validation" {
		t.Fatalf("results %+v, errors %+v", all, failed)
	}
	d, err := c.GetDevice(ctx, all[0].DeviceID)
	if err != nil || d.Attributes["tier"] != "pro" || d.Inventory.Groups[0] != "g1" {
		t.Fatalf("registered device: %+v, %v", d, err)
	}
	stopErr := errors.New("enough")
	if err := c.JobResults(ctx, j.ID, false, func(JobResult) error { return stopErr }); !errors.Is(err, stopErr) {
		t.Fatalf("JobResults with a failing callback: %v", err)
	}

	var ids []string
	for job, err := range c.Jobs(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	if fmt.Sprint(ids) != fmt.Sprint([]string{other.ID, queued.ID}) {
		t.Fatalf("Jobs: %v, want newest first", ids)
	}
	if p, err := c.ListJobs(ctx, JobCancelled, ListOptions{Limit: 10}); err != nil || len(p.Items) != 1 || p.Items[0].ID != other.ID {
		t.Fatalf("ListJobs(cancelled): %+v, %v", p, err)
	}
	var nf *APIError
	if _, err := c.GetJob(ctx, "job_nope"); !errors.As(err, &nf) || nf.Status != 404 {
		t.Fatalf("GetJob of an unknown job: %v", err)
	}
	if _, err := c.StartJob(ctx, strings.NewReader("x"), JobOptions{Op: JobRegister}); err == nil {
		t.Fatal("a job without a manifest format was started")
	}
	_, err = c.StartJob(ctx, strings.NewReader("serial\nX-1\n"), JobOptions{Op: JobRegister, Format: FormatCSV})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Field != "template" {
		t.Fatalf("register without a template: %v", err)
	}
}
