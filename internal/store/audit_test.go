package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func finding(check, subject, severity, msg string) Finding {
	return Finding{Key: check + ":" + subject, Check: check, Severity: severity, SubjectKind: "device", Subject: subject,
		DeviceID: subject, Message: msg, Fix: "fix it", Evidence: json.RawMessage(`{"n":1}`)}
}

func startRun(t *testing.T, s *Store, slot string, checks ...string) *AuditRun {
	t.Helper()
	run := &AuditRun{Kind: AuditManual, Actor: "tester", Node: "n1", Slot: slot, Checks: checks}
	if err := s.StartAuditRun(t.Context(), run); err != nil {
		t.Fatalf("StartAuditRun: %v", err)
	}
	return run
}

func findingsOf(t *testing.T, s *Store, f FindingFilter) map[string]Finding {
	t.Helper()
	out := map[string]Finding{}
	cursor := ""
	for {
		page, next, err := s.ListFindings(t.Context(), f, cursor, 2)
		if err != nil {
			t.Fatalf("ListFindings: %v", err)
		}
		for _, x := range page {
			out[x.Key] = x
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

// TestAuditRunsUpdateFindings: a re-run updates the findings it reports
// again, adds new ones, resolves those it no longer reports, reopens
// resolved ones that come back, and leaves checks it did not run alone.
func TestAuditRunsUpdateFindings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		r1 := startRun(t, s, "", "a", "b")
		done, err := s.FinishAuditRun(ctx, r1.ID, []string{"a", "b"}, []Finding{
			finding("a", "d1", "high", "one"), finding("a", "d2", "low", "two"), finding("b", "d1", "critical", "three"),
		})
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "run 1 counts", done.Counts, AuditCounts{Findings: 3, New: 3, Open: 3, BySeverity: map[string]int{"high": 1, "low": 1, "critical": 1}})
		if done.Status != AuditDone || done.FinishedAt == nil {
			t.Errorf("run 1 = %+v", done)
		}

		// Run 2 of check a only: d1 again with a new message, d2 gone, d3 new.
		r2 := startRun(t, s, "", "a")
		done, err = s.FinishAuditRun(ctx, r2.ID, []string{"a"}, []Finding{finding("a", "d1", "high", "one, changed"), finding("a", "d3", "medium", "new")})
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "run 2 counts", done.Counts, AuditCounts{Findings: 2, New: 1, Resolved: 1, Open: 3, BySeverity: map[string]int{"high": 1, "medium": 1, "critical": 1}})
		all := findingsOf(t, s, FindingFilter{})
		if len(all) != 4 {
			t.Fatalf("findings = %d, want 4 (no duplicates)", len(all))
		}
		if f := all["a:d1"]; f.Message != "one, changed" || f.FirstRun != r1.ID || f.LastRun != r2.ID || f.State != FindingOpen {
			t.Errorf("a:d1 = %+v", f)
		}
		if f := all["a:d2"]; f.State != FindingResolved || f.ResolvedAt == nil {
			t.Errorf("a:d2 = %+v", f)
		}
		if f := all["b:d1"]; f.State != FindingOpen || f.LastRun != r1.ID {
			t.Errorf("b:d1 was touched by a run that did not run b: %+v", f)
		}

		// Run 3: d2 is back.
		r3 := startRun(t, s, "", "a")
		done, err = s.FinishAuditRun(ctx, r3.ID, []string{"a"}, []Finding{finding("a", "d1", "high", "one, changed"), finding("a", "d2", "low", "two"), finding("a", "d3", "medium", "new")})
		if err != nil {
			t.Fatal(err)
		}
		if done.Counts.New != 1 || done.Counts.Resolved != 0 {
			t.Errorf("run 3 counts = %+v", done.Counts)
		}
		if f, _ := s.Finding(ctx, "a:d2"); f.State != FindingOpen || f.ResolvedAt != nil || f.FirstRun != r1.ID {
			t.Errorf("reopened a:d2 = %+v", f)
		}

		runs, err := s.AuditRuns(ctx, 10)
		if err != nil || len(runs) != 3 || runs[0].ID != r3.ID || runs[2].ID != r1.ID {
			t.Fatalf("AuditRuns = %v, %v", runs, err)
		}
		if strings.Join(runs[2].Checks, ",") != "a,b" {
			t.Errorf("run 1 checks = %v", runs[2].Checks)
		}
	})
}

func TestAuditRunBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		// A slot is taken once: the second node's claim is ErrDuplicate.
		startRun(t, s, "scheduled:2026-11-24T00:00:00Z")
		err := s.StartAuditRun(ctx, &AuditRun{Kind: AuditScheduled, Slot: "scheduled:2026-11-24T00:00:00Z"})
		if !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second claim of a slot: %v", err)
		}
		// A finding reported twice fails the run and writes nothing.
		r := startRun(t, s, "", "a")
		if _, err := s.FinishAuditRun(ctx, r.ID, []string{"a"}, []Finding{finding("a", "d1", "low", "x"), finding("a", "d1", "low", "x")}); err == nil {
			t.Fatal("duplicate finding accepted")
		}
		if n := countAll(t, s, "audit_findings"); n != 0 {
			t.Errorf("%d findings written by a failed finish", n)
		}
		if err := s.FailAuditRun(ctx, r.ID, errors.New("check a: boom")); err != nil {
			t.Fatal(err)
		}
		got, err := s.AuditRun(ctx, r.ID)
		if err != nil || got.Status != AuditFailed || got.Error != "check a: boom" {
			t.Errorf("failed run = %+v, %v", got, err)
		}
		if _, err := s.AuditRun(ctx, "aud_missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing run: %v", err)
		}
		if _, _, err := s.ListFindings(ctx, FindingFilter{State: "closed"}, "", 10); err == nil {
			t.Error("unknown state accepted")
		}
		if _, _, err := s.ListFindings(ctx, FindingFilter{}, "garbage!", 10); !errors.Is(err, ErrBadCursor) {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

func TestFindingFiltersAndSuppression(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		r := startRun(t, s, "", "a", "b")
		var fs []Finding
		for i := range 5 {
			fs = append(fs, finding("a", fmt.Sprintf("d%d", i), []string{"high", "low"}[i%2], "x"))
		}
		fs = append(fs, finding("b", "d0", "critical", "y"))
		if _, err := s.FinishAuditRun(ctx, r.ID, []string{"a", "b"}, fs); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			f    FindingFilter
			want int
		}{
			{FindingFilter{}, 6}, {FindingFilter{Check: "a"}, 5}, {FindingFilter{Severity: "low"}, 2},
			{FindingFilter{DeviceID: "d0"}, 2}, {FindingFilter{DeviceID: "d0", Check: "b"}, 1}, {FindingFilter{State: FindingOpen}, 6},
			{FindingFilter{State: FindingResolved}, 0},
		} {
			if got := findingsOf(t, s, c.f); len(got) != c.want {
				t.Errorf("%+v: %d findings, want %d", c.f, len(got), c.want)
			}
		}

		until := time.Now().Add(48 * time.Hour)
		f, err := s.SuppressFinding(ctx, "b:d0", "accepted risk: lab device", until, "admin/root")
		if err != nil {
			t.Fatal(err)
		}
		if f.State != FindingSuppressed || f.Suppression == nil || f.Suppression.Reason != "accepted risk: lab device" || f.Suppression.By != "admin/root" {
			t.Fatalf("suppressed = %+v", f)
		}
		if got := findingsOf(t, s, FindingFilter{State: FindingSuppressed}); len(got) != 1 {
			t.Errorf("suppressed list = %v", got)
		}
		if got := findingsOf(t, s, FindingFilter{State: FindingOpen}); len(got) != 5 {
			t.Errorf("open list = %d", len(got))
		}
		log, err := s.History(ctx, fleet.FleetSubject)
		if err != nil {
			t.Fatal(err)
		}
		last := log[len(log)-1]
		if last.Type != EventFindingSuppressed || last.Actor != "admin/root" || !strings.Contains(string(last.Data), "lab device") {
			t.Errorf("audit log event = %+v %s", last, last.Data)
		}
		// A re-run keeps the suppression; counts show it.
		r2 := startRun(t, s, "", "b")
		done, err := s.FinishAuditRun(ctx, r2.ID, []string{"b"}, []Finding{finding("b", "d0", "critical", "y")})
		if err != nil {
			t.Fatal(err)
		}
		if done.Counts.Suppressed != 1 || done.Counts.BySeverity["critical"] != 0 {
			t.Errorf("counts with a suppression = %+v", done.Counts)
		}
		// An expired suppression no longer hides the finding.
		if _, err := s.SuppressFinding(ctx, "b:d0", "short", time.Now().Add(-time.Minute), "admin/root"); err != nil {
			t.Fatal(err)
		}
		if f, _ := s.Finding(ctx, "b:d0"); f.State != FindingOpen || f.Suppression != nil {
			t.Errorf("expired suppression = %+v", f)
		}
		// Unknown findings: not found, nothing logged.
		before := len(log)
		if _, err := s.SuppressFinding(ctx, "nope:x", "r", until, "admin/root"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown finding: %v", err)
		}
		if log, _ := s.History(ctx, fleet.FleetSubject); len(log) != before+1 {
			t.Errorf("audit log grew by %d", len(log)-before)
		}
	})
}

func advisory(id, doc string, pkgs ...string) Advisory {
	a := Advisory{ID: id, Modified: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Summary: "s " + id, Source: id + ".json", Doc: doc}
	for _, p := range pkgs {
		a.Packages = append(a.Packages, AdvisoryPackage{Ecosystem: "Go", Name: p})
	}
	return a
}

func TestImportAdvisories(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		res, err := s.ImportAdvisories(ctx, []Advisory{advisory("A-1", `{"id":"A-1"}`, "Pkg-One"), advisory("A-2", `{"id":"A-2"}`, "two", "three")}, false, "admin/root")
		if err != nil || res != (AdvisoryImport{Added: 2}) {
			t.Fatalf("first import = %+v, %v", res, err)
		}
		res, err = s.ImportAdvisories(ctx, []Advisory{advisory("A-1", `{"id":"A-1","v":2}`, "pkg-one"), advisory("A-2", `{"id":"A-2"}`, "two", "three"), advisory("A-3", `{"id":"A-3"}`, "x")}, false, "admin/root")
		if err != nil || res != (AdvisoryImport{Added: 1, Updated: 1, Unchanged: 1}) {
			t.Fatalf("second import = %+v, %v", res, err)
		}
		advs, err := s.Advisories(ctx, true)
		if err != nil || len(advs) != 3 {
			t.Fatalf("Advisories = %v, %v", advs, err)
		}
		if advs[0].ID != "A-1" || advs[0].Doc != `{"id":"A-1","v":2}` || len(advs[0].Packages) != 1 || advs[0].Packages[0].Name != "pkg-one" {
			t.Errorf("A-1 = %+v", advs[0])
		}
		if len(advs[1].Packages) != 2 {
			t.Errorf("A-2 packages = %+v", advs[1].Packages)
		}
		if list, _ := s.Advisories(ctx, false); list[0].Doc != "" {
			t.Error("docs read without being asked for")
		}
		// Replace: the set becomes exactly the import.
		res, err = s.ImportAdvisories(ctx, []Advisory{advisory("A-3", `{"id":"A-3"}`, "x")}, true, "admin/root")
		if err != nil || res != (AdvisoryImport{Unchanged: 1, Removed: 2}) {
			t.Fatalf("replacing import = %+v, %v", res, err)
		}
		if n := countAll(t, s, "advisory_packages"); n != 1 {
			t.Errorf("%d package rows after replace, want 1", n)
		}
		// Bad input: one id twice; nothing changes.
		if _, err := s.ImportAdvisories(ctx, []Advisory{advisory("B-1", `{}`, "b"), advisory("B-1", `{}`, "b")}, true, "admin/root"); err == nil {
			t.Fatal("duplicate id accepted")
		}
		if advs, _ := s.Advisories(ctx, false); len(advs) != 1 || advs[0].ID != "A-3" {
			t.Errorf("a failed import changed the advisories: %+v", advs)
		}
		log, _ := s.History(ctx, fleet.FleetSubject)
		if n := len(log); n != 3 || log[2].Type != EventAdvisoriesImported || !strings.Contains(string(log[2].Data), `"removed":2`) {
			t.Errorf("audit log = %d events, last %+v", n, log[n-1])
		}
	})
}

// TestAuditInputs covers the fleet-wide reads the audit makes.
func TestAuditInputs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d1 := mustCreate(t, s, newTestDevice("S1", withBOM(testBOM)))
		d2 := mustCreate(t, s, newTestDevice("S2"))
		insertCert(t, s, "ca1", "a1", d1.ID, CertOperational)
		insertCert(t, s, "ca1", "a2", d2.ID, CertOperational)
		// The same key certified for both devices, bypassing the store's
		// own refusal, as a restored or tampered database might hold.
		if _, err := s.DB().ExecContext(ctx, s.d.rebind("UPDATE certificates SET fingerprint = ? WHERE serial IN (?, ?)"), "fp-shared", "a1", "a2"); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := s.EachCertificate(ctx, func(c *Certificate) error { n++; return nil }); err != nil || n != 2 {
			t.Errorf("EachCertificate: %d, %v", n, err)
		}
		shared, err := s.SharedKeys(ctx)
		if err != nil || len(shared["fp-shared"]) != 2 {
			t.Errorf("SharedKeys = %v, %v", shared, err)
		}
		var devs []AuditDevice
		if err := s.EachAuditDevice(ctx, func(d AuditDevice) error { devs = append(devs, d); return nil }); err != nil || len(devs) != 2 {
			t.Fatalf("EachAuditDevice: %d, %v", len(devs), err)
		}
		boms, err := s.BOMs(ctx)
		if err != nil || len(boms) != 1 {
			t.Fatalf("BOMs = %d, %v", len(boms), err)
		}
		for _, d := range devs {
			if d.ID == d1.ID && string(boms[d.BOMSHA256]) != testBOM {
				t.Errorf("device 1's BOM is not reachable by its hash")
			}
		}
		start := time.Now().UTC().Truncate(5 * time.Minute)
		w := MeterWindow{DeviceID: d1.ID, Start: start, Seconds: 300, Attempts: 3, Connects: 1, RevokedAttempts: 2, SourceIPs: []string{"10.0.0.1"}}
		if err := s.SaveMeterWindows(ctx, "n1", []MeterWindow{w}); err != nil {
			t.Fatal(err)
		}
		var rows []MeterWindow
		err = s.EachMeterRow(ctx, start.Add(-time.Hour), func(node string, w MeterWindow) error {
			if node != "n1" {
				t.Errorf("node = %q", node)
			}
			rows = append(rows, w)
			return nil
		})
		if err != nil || len(rows) != 1 || rows[0].RevokedAttempts != 2 || rows[0].SourceIPs[0] != "10.0.0.1" {
			t.Errorf("EachMeterRow = %+v, %v", rows, err)
		}
		if got, _ := s.DeviceMetrics(ctx, d1.ID, start, start.Add(time.Hour)); len(got) != 1 || got[0].RevokedAttempts != 2 {
			t.Errorf("DeviceMetrics lost revokedAttempts: %+v", got)
		}
		if err := s.SavePresence(ctx, []Presence{{DeviceID: d1.ID, Node: "n1", ConnectedAt: start, LastSeen: start}}); err != nil {
			t.Fatal(err)
		}
		if ps, err := s.AllPresence(ctx); err != nil || len(ps) != 1 || ps[0].Node != "n1" {
			t.Errorf("AllPresence = %+v, %v", ps, err)
		}
		heads, err := s.ChainHeads(ctx)
		if err != nil || heads[d1.ID].Seq != 1 || heads[fleet.FleetSubject].Seq != 0 {
			t.Errorf("ChainHeads = %+v, %v", heads, err)
		}
		chains := map[string]int{}
		err = s.EachChain(ctx, func(subject string, events []fleet.Event) error {
			chains[subject] = len(events)
			if brk := fleet.VerifyChain(events); brk != nil {
				t.Errorf("chain %s: %+v", subject, brk)
			}
			return nil
		})
		if err != nil || chains[d1.ID] != 1 || chains[d2.ID] != 1 {
			t.Errorf("EachChain = %v, %v", chains, err)
		}
		if reqs, err := s.BirthRequests(ctx, time.Time{}); err != nil || len(reqs) != 0 {
			t.Errorf("BirthRequests = %v, %v", reqs, err)
		}
	})
}

// TestAbandonedAuditRuns: a run whose node died stays "running" only until
// the next run: that node's next run, or any node's run once it is an
// hour old, records it failed. A live run of another node is left alone.
func TestAbandonedAuditRuns(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, u string) {
		at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s, err := Open(t.Context(), Config{URL: u, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		start := func(node string) *AuditRun {
			run := &AuditRun{Kind: AuditManual, Actor: "tester", Node: node}
			if err := s.StartAuditRun(t.Context(), run); err != nil {
				t.Fatalf("StartAuditRun on %s: %v", node, err)
			}
			return run
		}
		status := func(id string) string {
			r, err := s.AuditRun(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			return r.Status
		}
		deadA := start("a") // node a dies during this run
		liveB := start("b")
		at = at.Add(time.Minute)
		start("a") // node a restarted and audits again
		if got := status(deadA.ID); got != AuditFailed {
			t.Fatalf("node a's earlier run is %s after a's next run, want failed", got)
		}
		if got := status(liveB.ID); got != AuditRunning {
			t.Fatalf("node b's live run is %s after a's run, want running", got)
		}
		at = at.Add(auditRunAbandoned)
		start("c")
		if got := status(liveB.ID); got != AuditFailed {
			t.Fatalf("node b's run is %s after an hour, want failed", got)
		}
		r, _ := s.AuditRun(t.Context(), liveB.ID)
		if !strings.Contains(r.Error, "abandoned") || r.FinishedAt == nil {
			t.Fatalf("abandoned run recorded as %+v", r)
		}
	})
}

// TestAuditRunProgress: a running run records its progress, which the run
// keeps after it ends; reports after the end change nothing, and a run
// that ended (such as one taken for abandoned) can be neither finished
// nor failed again.
func TestAuditRunProgress(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, u string) {
		at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
		s, err := Open(t.Context(), Config{URL: u, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ctx := t.Context()
		run := startRun(t, s, "", "a")
		p := AuditProgress{ChecksDone: 1, Check: "a", Devices: 7, Certificates: 9, MeterRows: 3, Histories: 2, Findings: 1}
		if err := s.AuditRunProgress(ctx, run.ID, p); err != nil {
			t.Fatal(err)
		}
		got, _ := s.AuditRun(ctx, run.ID)
		p.UpdatedAt = at
		if got.Progress != p || got.Status != AuditRunning || got.Counts.Findings != 0 {
			t.Fatalf("running run = %+v", got)
		}
		if err := s.AuditRunProgress(ctx, "aud_nope", p); !errors.Is(err, ErrNotFound) {
			t.Errorf("progress of an unknown run: %v", err)
		}
		done, err := s.FinishAuditRun(ctx, run.ID, []string{"a"}, []Finding{finding("a", "d1", "low", "x")})
		if err != nil {
			t.Fatal(err)
		}
		if done.Progress != p || done.Counts.Findings != 1 || done.Status != AuditDone {
			t.Errorf("finished run = %+v", done)
		}
		// Late reports and failures leave a finished run as it ended.
		if err := s.AuditRunProgress(ctx, run.ID, AuditProgress{Devices: 99}); err != nil {
			t.Errorf("late progress: %v", err)
		}
		if err := s.FailAuditRun(ctx, run.ID, errors.New("late")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AuditRun(ctx, run.ID); got.Status != AuditDone || got.Progress.Devices != 7 || got.Error != "" {
			t.Errorf("run after late reports = %+v", got)
		}

		// A run failed meanwhile is not finished: its findings stay.
		r2 := startRun(t, s, "", "a")
		if err := s.FailAuditRun(ctx, r2.ID, errors.New("abandoned")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishAuditRun(ctx, r2.ID, []string{"a"}, nil); !errors.Is(err, ErrAuditRunEnded) {
			t.Errorf("finish of a failed run: %v", err)
		}
		if f, _ := s.Finding(ctx, "a:d1"); f == nil || f.State != FindingOpen {
			t.Errorf("finding after a refused finish = %+v", f)
		}
		if _, err := s.FinishAuditRun(ctx, "aud_nope", []string{"a"}, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("finish of an unknown run: %v", err)
		}
	})
}

// TestCloseNodeAuditRuns: a node starting again fails the runs it left
// running, and no other node's.
func TestCloseNodeAuditRuns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		start := func(node string) *AuditRun {
			run := &AuditRun{Kind: AuditManual, Actor: "tester", Node: node}
			if err := s.StartAuditRun(ctx, run); err != nil {
				t.Fatalf("StartAuditRun on %s: %v", node, err)
			}
			return run
		}
		mine, other := start("a"), start("b")
		n, err := s.CloseNodeAuditRuns(ctx, "a")
		if err != nil || n != 1 {
			t.Fatalf("CloseNodeAuditRuns(a) = %d, %v; want 1", n, err)
		}
		r, err := s.AuditRun(ctx, mine.ID)
		if err != nil || r.Status != AuditFailed || r.Error != abandonedReason || r.FinishedAt == nil {
			t.Fatalf("a's run = %+v, %v; want failed as abandoned", r, err)
		}
		if r, err := s.AuditRun(ctx, other.ID); err != nil || r.Status != AuditRunning {
			t.Fatalf("b's run = %+v, %v; want still running", r, err)
		}
		if n, err := s.CloseNodeAuditRuns(ctx, "a"); err != nil || n != 0 {
			t.Fatalf("CloseNodeAuditRuns(a) again = %d, %v; want 0", n, err)
		}
	})
}
