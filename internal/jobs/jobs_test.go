package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/store"
)

var registerSpec = jobs.Spec{Op: jobs.OpRegister, Template: "sensor", Defaults: jobs.Defaults{Factory: "acme", Model: "m1", Groups: []string{"fleet"}}}

// TestRegisterBadRows registers a manifest with bad rows among good ones:
// every good row is registered, every bad one has its reason, and the job
// runs to the end.
func TestRegisterBadRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "node-a", time.Second, 3)
		manifest := strings.Join([]string{
			`{"serial":"SN-1","owner":"acme","tags":["t1"],"attributes":{"tier":"pro"}}`,
			`{"serial":"SN-2"`,                         // broken JSON
			`{"serial":"SN-3","colour":"red"}`,         // unknown field
			`{"owner":"nobody"}`,                       // no serial
			`{"serial":"bad serial!"}`,                 // invalid name
			`{"serial":"SN-6","model":"m9"}`,           // outside the template's models
			`{"serial":"SN-7","model":"m2"}`,           // good, other model
			`{"serial":"SN-1","owner":"acme"}`,         // repeats row 1: same data
			`{"serial":"SN-9","id":"dev_x"}`,           // register assigns ids
			`{"serial":"SN-10","attributes":{"":"x"}}`, // invalid attribute key
		}, "\n") + "\n"
		j := start(t, n, registerSpec, manifest, mfg.FormatJSONL)
		if j.Rows != 10 || j.Chunks != 4 || j.Status != store.JobQueued || len(j.ManifestSHA256) != 64 {
			t.Fatalf("queued job: %+v", j)
		}
		j = n.runUntilFinished(t, j.ID)
		if j.Status != store.JobDone || j.OK != 2 || j.Unchanged != 1 || j.Errors != 7 || j.Node != "node-a" {
			t.Fatalf("finished job: %+v", j)
		}
		rs := results(t, n, j.ID)
		want := []struct{ status, code string }{
			{jobs.StatusOK, ""}, {jobs.StatusError, jobs.CodeParse}, {jobs.StatusError, jobs.CodeParse},
			{jobs.StatusError, jobs.CodeValidation}, {jobs.StatusError, jobs.CodeValidation}, {jobs.StatusError, jobs.CodeTemplate},
			{jobs.StatusOK, ""}, {jobs.StatusUnchanged, ""}, {jobs.StatusError, jobs.CodeValidation}, {jobs.StatusError, jobs.CodeValidation},
		}
		if len(rs) != len(want) {
			t.Fatalf("%d results, want %d: %+v", len(rs), len(want), rs)
		}
		for i, w := range want {
			r := rs[i]
			if r.Row != int64(i+1) || r.Line != i+1 || r.Status != w.status || r.Code != w.code || (r.Status == jobs.StatusError) != (r.Message != "") {
				t.Errorf("row %d: %+v, want %s %s", i+1, r, w.status, w.code)
			}
		}
		if rs[0].DeviceID == "" || rs[7].DeviceID != rs[0].DeviceID {
			t.Errorf("device ids: row 1 %q, its repeat %q", rs[0].DeviceID, rs[7].DeviceID)
		}
		if n := countDevices(t, st); n != 2 {
			t.Fatalf("%d devices registered, want 2", n)
		}
		d, err := st.GetDevice(context.Background(), rs[0].DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Lifecycle.State != fleet.StateManufactured || d.Identity.Factory != "acme" || d.Identity.Model != "m1" ||
			d.Inventory.Owner != "acme" || !slices.Equal(d.Inventory.Groups, []string{"fleet"}) || !slices.Equal(d.Inventory.Tags, []string{"t1"}) ||
			d.Attributes["tier"] != "pro" || d.Attributes[provision.AttrTemplate] != "sensor" {
			t.Errorf("registered device: %+v", d)
		}
		var errs []jobs.RowResult
		if err := n.svc.Results(context.Background(), j.ID, true, func(r *jobs.RowResult) error { errs = append(errs, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(errs) != 7 {
			t.Errorf("errors-only results: %d, want 7", len(errs))
		}
	})
}

// TestResubmission starts the same manifest twice: the second job changes
// nothing. A row whose data differs from the registered device is refused.
func TestResubmission(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "node-a", time.Second, 7)
		manifest := registerManifest(50)
		first := n.runUntilFinished(t, start(t, n, registerSpec, manifest, mfg.FormatJSONL).ID)
		if first.OK != 50 {
			t.Fatalf("first job: %+v", first)
		}
		second := n.runUntilFinished(t, start(t, n, registerSpec, manifest, mfg.FormatJSONL).ID)
		if second.OK != 0 || second.Unchanged != 50 || second.Errors != 0 || second.ManifestSHA256 != first.ManifestSHA256 {
			t.Fatalf("resubmitted job: %+v", second)
		}
		if c := countDevices(t, st); c != 50 {
			t.Fatalf("%d devices after resubmission, want 50", c)
		}
		changed := n.runUntilFinished(t, start(t, n, registerSpec, `{"serial":"SN-000003","owner":"someone-else"}`+"\n", mfg.FormatJSONL).ID)
		rs := results(t, n, changed.ID)
		if changed.Errors != 1 || rs[0].Code != jobs.CodeConflict || !strings.Contains(rs[0].Message, "update job") {
			t.Fatalf("changed row: %+v %+v", changed, rs)
		}
	})
}

// TestResumeAfterCrash applies part of a job under one node's lease and
// abandons it, as a killed node would; another node takes the job over once
// the lease expires and finishes it with every row applied exactly once.
func TestResumeAfterCrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		const rows, chunk = 200, 20
		a := newNode(t, st, "node-a", 300*time.Millisecond, chunk)
		j := start(t, a, registerSpec, registerManifest(rows), mfg.FormatJSONL)

		// node-a applies three chunks, then dies holding the lease. A fourth
		// chunk's transaction dies half-way: it must leave no trace.
		l, err := st.AcquireLease(ctx, "job:"+j.ID, "node-a", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.StartJob(ctx, l, j.ID, "node-a"); err != nil {
			t.Fatal(err)
		}
		for seq := range int64(3) {
			if err := st.ApplyJobChunk(ctx, l, j.ID, seq, "admin/test", fakeRegister(st, seq, chunk)); err != nil {
				t.Fatal(err)
			}
		}
		crash := errors.New("killed mid-transaction")
		err = st.ApplyJobChunk(ctx, l, j.ID, 3, "admin/test", func(ctx context.Context, tx *store.JobTx) (*store.JobChunkOutcome, error) {
			if _, err := fakeRegister(st, 3, chunk)(ctx, tx); err != nil {
				return nil, err
			}
			return nil, crash
		})
		if !errors.Is(err, crash) {
			t.Fatal(err)
		}
		if c := countDevices(t, st); c != 3*chunk {
			t.Fatalf("%d devices after the crash, want %d", c, 3*chunk)
		}

		b := newNode(t, st, "node-b", 300*time.Millisecond, chunk)
		j = b.runUntilFinished(t, j.ID)
		if j.Status != store.JobDone || j.OK != rows || j.Unchanged != 0 || j.Errors != 0 || j.Node != "node-b" {
			t.Fatalf("finished job: %+v", j)
		}
		if c := countDevices(t, st); c != rows {
			t.Fatalf("%d devices, want %d", c, rows)
		}
		rs := results(t, b, j.ID)
		if len(rs) != rows {
			t.Fatalf("%d results, want %d", len(rs), rows)
		}
		seen := map[string]bool{}
		for i, r := range rs {
			if r.Row != int64(i+1) || r.Status != jobs.StatusOK || seen[r.Serial] {
				t.Fatalf("result %d: %+v (serial seen before: %v)", i, r, seen[r.Serial])
			}
			seen[r.Serial] = true
		}
	})
}

// fakeRegister applies chunk seq of a registerManifest as the runner
// would, with results in the same shape.
func fakeRegister(st *store.Store, seq int64, chunk int) func(context.Context, *store.JobTx) (*store.JobChunkOutcome, error) {
	return func(ctx context.Context, tx *store.JobTx) (*store.JobChunkOutcome, error) {
		var ds []*fleet.Device
		var res strings.Builder
		for i := range chunk {
			row := int(seq)*chunk + i
			sn := fmt.Sprintf("SN-%06d", row)
			ds = append(ds, &fleet.Device{Identity: fleet.Identity{Serial: sn, Model: "m1", Factory: "acme"},
				Inventory: fleet.Inventory{Owner: "acme", Groups: []string{"fleet"}}, Attributes: map[string]string{provision.AttrTemplate: "sensor"}})
			fmt.Fprintf(&res, `{"row":%d,"line":%d,"serial":%q,"status":"ok"}`+"\n", row+1, row+1, sn)
		}
		if _, _, err := tx.InsertDevices(ctx, st.PrepareDevices(ds, "admin/test")); err != nil {
			return nil, err
		}
		return &store.JobChunkOutcome{Results: []byte(res.String()), OK: int64(chunk)}, nil
	}
}

// TestCancel cancels a queued job: no runner applies it.
func TestCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "node-a", time.Second, 5)
		j := start(t, n, registerSpec, registerManifest(20), mfg.FormatJSONL)
		c, err := n.svc.Cancel(context.Background(), j.ID, "admin/test", "")
		if err != nil || c.Status != store.JobCancelled {
			t.Fatalf("Cancel: %+v, %v", c, err)
		}
		// The next job runs; the cancelled one stays untouched.
		other := n.runUntilFinished(t, start(t, n, registerSpec, `{"serial":"OTHER-1"}`+"\n", mfg.FormatJSONL).ID)
		if other.OK != 1 {
			t.Fatalf("other job: %+v", other)
		}
		if c := countDevices(t, st); c != 1 {
			t.Fatalf("%d devices, want only the other job's", c)
		}
		if rs := results(t, n, j.ID); len(rs) != 0 {
			t.Fatalf("a cancelled job has results: %+v", rs)
		}
	})
}

// TestBadInput refuses what cannot make a job, storing nothing.
func TestBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "node-a", time.Second, 5)
		for name, c := range map[string]struct {
			spec     jobs.Spec
			manifest string
			format   mfg.Format
			field    string
		}{
			"unknown op":            {jobs.Spec{Op: "explode"}, registerManifest(1), mfg.FormatJSONL, "op"},
			"register, no template": {jobs.Spec{Op: jobs.OpRegister}, registerManifest(1), mfg.FormatJSONL, "template"},
			"unknown template":      {jobs.Spec{Op: jobs.OpRegister, Template: "nope"}, registerManifest(1), mfg.FormatJSONL, "template"},
			"decommission by job":   {jobs.Spec{Op: jobs.OpState, State: fleet.StateDecommissioned}, registerManifest(1), mfg.FormatJSONL, "state"},
			"bad revocation reason": {jobs.Spec{Op: jobs.OpRevoke, RevocationReason: "boredom"}, registerManifest(1), mfg.FormatJSONL, "revocationReason"},
			"unknown CSV column":    {registerSpec, "serial,colour\nSN-1,red\n", mfg.FormatCSV, "manifest"},
			"empty manifest":        {registerSpec, "\n\n", mfg.FormatJSONL, "manifest"},
			"header only":           {registerSpec, "serial,owner\n", mfg.FormatCSV, "manifest"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := n.svc.Start(context.Background(), c.spec, strings.NewReader(c.manifest), c.format, "admin/test")
				var fe *fleet.FieldError
				if !errors.As(err, &fe) || fe.Field != c.field || fe.Message == "" {
					t.Fatalf("Start: %v, want a field error on %s", err, c.field)
				}
			})
		}
		if js, err := n.svc.List(context.Background(), "", "", 100); err != nil || len(js) != 0 {
			t.Fatalf("refused jobs were stored: %+v, %v", js, err)
		}
	})
}

// TestCSVAndOperations runs a CSV register job, then update, state,
// reprovision and revoke jobs over the same devices, and each again to
// show it changes nothing the second time.
func TestCSVAndOperations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		putTemplate(t, st, "sensor-v2")
		n := newNode(t, st, "node-a", time.Second, 2)
		run := func(spec jobs.Spec, manifest string, format mfg.Format) (*store.Job, []jobs.RowResult) {
			t.Helper()
			j := n.runUntilFinished(t, start(t, n, spec, manifest, format).ID)
			return j, results(t, n, j.ID)
		}
		csv := "serial,model,groups,tags,attr.site-code,attributes\n" +
			"C-1,m1,north;south,,LY1,\n" +
			"C-2,m2,\"[\"\"east\"\"]\",t9,,\"{\"\"tier\"\":\"\"pro\"\"}\"\n" +
			"C-3,m1,,,,{broken\n"
		j, rs := run(jobs.Spec{Op: jobs.OpRegister, Template: "sensor", Defaults: jobs.Defaults{Factory: "acme"}}, csv, mfg.FormatCSV)
		if j.OK != 2 || j.Errors != 1 || rs[2].Code != jobs.CodeParse || !strings.Contains(rs[2].Message, "attributes") {
			t.Fatalf("CSV register: %+v %+v", j, rs)
		}
		d1, _ := st.GetDevice(ctx, rs[0].DeviceID)
		d2, _ := st.GetDevice(ctx, rs[1].DeviceID)
		if !slices.Equal(d1.Inventory.Groups, []string{"north", "south"}) || d1.Attributes["site-code"] != "LY1" ||
			!slices.Equal(d2.Inventory.Groups, []string{"east"}) || d2.Attributes["tier"] != "pro" || !slices.Equal(d2.Inventory.Tags, []string{"t9"}) {
			t.Fatalf("CSV devices: %+v %+v", d1, d2)
		}

		// Update by id and by serial; an unknown device is not_found.
		upd := fmt.Sprintf(`{"id":%q,"attributes":{"tier":"","fw":"2"}}`+"\n"+`{"serial":"C-2","model":"m2","groups":["beta"]}`+"\n"+`{"serial":"C-404","model":"m1"}`+"\n", d1.ID)
		spec := jobs.Spec{Op: jobs.OpUpdate, Defaults: jobs.Defaults{Factory: "acme", Owner: "ops"}}
		j, rs = run(spec, upd, mfg.FormatJSONL)
		if j.OK != 2 || j.Errors != 1 || rs[2].Code != jobs.CodeNotFound {
			t.Fatalf("update: %+v %+v", j, rs)
		}
		d1, _ = st.GetDevice(ctx, d1.ID)
		d2, _ = st.GetDevice(ctx, d2.ID)
		if d1.Attributes["fw"] != "2" || d1.Inventory.Owner != "ops" || !slices.Contains(d2.Inventory.Groups, "beta") || d2.Inventory.Owner != "ops" {
			t.Fatalf("updated devices: %+v %+v", d1, d2)
		}
		if j, _ = run(spec, upd, mfg.FormatJSONL); j.OK != 0 || j.Unchanged != 2 {
			t.Fatalf("update again: %+v", j)
		}
		// A row naming a device twice: the second is refused.
		dup := fmt.Sprintf(`{"id":%q}`+"\n"+`{"serial":"C-1","model":"m1"}`+"\n", d1.ID)
		if j, rs = run(spec, dup, mfg.FormatJSONL); rs[1].Code != jobs.CodeDuplicate {
			t.Fatalf("duplicate rows: %+v %+v", j, rs)
		}

		// State: manufactured -> pending for both; again: unchanged; a
		// forbidden move is a row error with the allowed states.
		state := jobs.Spec{Op: jobs.OpState, State: fleet.StatePending, Reason: "ready", Defaults: jobs.Defaults{Factory: "acme"}}
		rows := fmt.Sprintf(`{"id":%q}`+"\n"+`{"id":%q}`+"\n", d1.ID, d2.ID)
		if j, _ = run(state, rows, mfg.FormatJSONL); j.OK != 2 {
			t.Fatalf("state: %+v", j)
		}
		if j, _ = run(state, rows, mfg.FormatJSONL); j.Unchanged != 2 {
			t.Fatalf("state again: %+v", j)
		}
		bad := fmt.Sprintf(`{"id":%q,"state":"active"}`+"\n", d1.ID)
		if j, rs = run(state, bad, mfg.FormatJSONL); j.Errors != 1 || rs[0].Code != jobs.CodeTransition {
			t.Fatalf("forbidden move: %+v %+v", j, rs)
		}
		h, _ := st.History(ctx, d1.ID)
		if last := h[len(h)-1]; last.Type != fleet.EventStateChanged || !strings.Contains(string(last.Data), `"job":"job_`) {
			t.Fatalf("state change event: %+v", last)
		}

		// Reprovision: only a device that provisioned may; d1 goes
		// provisioned -> active first.
		for _, to := range []fleet.State{fleet.StateProvisioned, fleet.StateActive} {
			if j, _ = run(jobs.Spec{Op: jobs.OpState, State: to}, fmt.Sprintf(`{"id":%q}`+"\n", d1.ID), mfg.FormatJSONL); j.OK != 1 {
				t.Fatalf("move to %s: %+v", to, j)
			}
		}
		rp := jobs.Spec{Op: jobs.OpReprovision, Template: "sensor-v2", Reason: "new template"}
		if j, rs = run(rp, rows, mfg.FormatJSONL); j.OK != 1 || j.Errors != 1 || rs[1].Code != jobs.CodeTransition {
			t.Fatalf("reprovision: %+v %+v", j, rs)
		}
		d1, _ = st.GetDevice(ctx, d1.ID)
		if d1.Lifecycle.State != fleet.StateReprovisioning || d1.Attributes[provision.AttrTemplate] != "sensor-v2" {
			t.Fatalf("reprovisioned device: %+v", d1)
		}
		if j, _ = run(rp, rows[:strings.Index(rows, "\n")+1], mfg.FormatJSONL); j.Unchanged != 1 {
			t.Fatalf("reprovision again: %+v", j)
		}

		// Revoke: devices without certificates are unchanged.
		if j, rs = run(jobs.Spec{Op: jobs.OpRevoke, RevocationReason: "keyCompromise"}, rows, mfg.FormatJSONL); j.Unchanged != 2 || rs[0].Message == "" {
			t.Fatalf("revoke: %+v %+v", j, rs)
		}
	})
}

// TestTemplateDeletedMidJob: a register job whose template is deleted
// before it runs ends with every row refused, not stuck.
func TestTemplateDeletedMidJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		st := openStore(t, url)
		putTemplate(t, st, "sensor")
		n := newNode(t, st, "node-a", time.Second, 5)
		j := start(t, n, registerSpec, registerManifest(7), mfg.FormatJSONL)
		if err := st.DeleteTemplate(context.Background(), "sensor", "admin/test"); err != nil {
			t.Fatal(err)
		}
		j = n.runUntilFinished(t, j.ID)
		rs := results(t, n, j.ID)
		if j.Status != store.JobDone || j.Errors != 7 || rs[6].Code != jobs.CodeTemplate || !strings.Contains(rs[6].Message, "deleted") {
			t.Fatalf("job: %+v, last result %+v", j, rs[6])
		}
		if c := countDevices(t, st); c != 0 {
			t.Fatalf("%d devices registered with a deleted template", c)
		}
	})
}

// TestWake: a job the node accepts starts at once, not at the runner's
// next poll (an hour away here).
func TestWake(t *testing.T) {
	st := openStore(t, "sqlite://"+t.TempDir()+"/m.db")
	putTemplate(t, st, "sensor")
	m, err := lease.New(lease.Config{Store: st, Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.Config{Store: st}
	runner := jobs.NewRunner(cfg, m, time.Hour)
	cfg.Queued = runner.Wake
	n := &node{svc: jobs.NewService(cfg), runner: runner, wait: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // past the runner's first look
	j := start(t, n, registerSpec, registerManifest(3), mfg.FormatJSONL)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if j, _ = n.svc.Get(ctx, j.ID); j.Finished() {
			if j.OK != 3 {
				t.Fatalf("job: %+v", j)
			}
			return
		}
	}
	t.Fatal("a woken runner did not run the job")
}
