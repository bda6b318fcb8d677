package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// heldStore holds an audit run in progress: EachAuditDevice hands every
// device to the check, then tells reached and waits for release or the
// run's end. With fail set it fails there instead.
type heldStore struct {
	audit.Store
	reached, release chan struct{}
	once             sync.Once
	fail             error
}

func (s *heldStore) EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error {
	if err := s.Store.EachAuditDevice(ctx, fn); err != nil {
		return err
	}
	s.once.Do(func() { close(s.reached) })
	if s.fail != nil {
		return s.fail
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// heldHarness is a harness whose auditor runs through a heldStore.
func heldHarness(t *testing.T, fail error) (*harness, *heldStore, *audit.Runner) {
	h := newHarness(t)
	held := &heldStore{Store: h.st, reached: make(chan struct{}), release: make(chan struct{}), fail: fail}
	r, err := audit.New(audit.Config{Store: held, Node: "api-test", ProgressEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last in, first out: the runner stops before the store closes.
	t.Cleanup(func() { r.Stop(context.Background()) })
	h.srv = New(Config{Store: h.st, CAs: h.cas, Commander: h.sent, Auditor: r})
	return h, held, r
}

func (s *heldStore) waitReached(t *testing.T) {
	t.Helper()
	select {
	case <-s.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the audit run never reached the held read")
	}
}

// TestAuditRunAccepted: POST answers 202 with the run running and where
// to follow it while the run is held in progress; the node refuses a
// second run naming the first; bad input and callers without audit:run
// are refused with nothing recorded; and the run, released, ends done
// with its counts.
func TestAuditRunAccepted(t *testing.T) {
	h, held, _ := heldHarness(t, nil)
	dev := h.deviceIn(factory1, fleet.StateActive)
	call[*fleet.Device](h, request{caller: "admin", method: "PATCH", path: "/v1/devices/" + dev.ID,
		body: map[string]any{"provisioning": map[string]any{"firmware": []any{map[string]any{"component": "acme-fw", "version": "1.3.0"}}}}}, http.StatusOK)
	call[store.AdvisoryImport](h, request{caller: "operator", method: "POST", path: "/v1/advisories",
		body: map[string]any{"advisories": []any{map[string]any{"source": "MUSTER-1.json", "record": testAdvisory("MUSTER-1")}}}}, http.StatusOK)

	w := h.do(request{caller: "auditor", method: "POST", path: "/v1/audit/runs", body: map[string]any{"checks": []string{"vulnerable-firmware"}}})
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	var run store.AuditRun
	if err := json.Unmarshal(w.Body.Bytes(), &run); err != nil {
		t.Fatal(err)
	}
	if run.Status != store.AuditRunning || run.ID == "" || run.StartedAt.IsZero() || run.FinishedAt != nil ||
		strings.Join(run.Checks, ",") != "vulnerable-firmware" || run.Actor != "auditor/auditor-token" {
		t.Fatalf("accepted run = %+v", run)
	}
	loc := w.Header().Get("Location")
	if loc != "/v1/audit/runs/"+run.ID {
		t.Fatalf("Location = %q", loc)
	}
	held.waitReached(t)
	if got := call[store.AuditRun](h, request{caller: "auditor", method: "GET", path: loc}, http.StatusOK); got.Status != store.AuditRunning {
		t.Errorf("GET while held = %+v", got)
	}

	// A second run while this one runs is refused, naming it.
	w = h.do(request{caller: "operator", method: "POST", path: "/v1/audit/runs", body: map[string]any{}})
	if e := errorOf(t, w); w.Code != http.StatusConflict || e.Code != codeAuditBusy || !strings.Contains(e.Message, run.ID) {
		t.Errorf("second POST: %d %+v", w.Code, e)
	}
	// Bad input and callers without audit:run: refused, nothing recorded.
	if w := h.do(request{caller: "admin", method: "POST", path: "/v1/audit/runs", body: map[string]any{"checks": []string{"weak-key", "nope"}}}); w.Code != http.StatusBadRequest || errorOf(t, w).Field != "checks" {
		t.Errorf("unknown check: %d %s", w.Code, w.Body)
	}
	for _, caller := range []string{"installer", "manufacturer", callerNone} {
		if w := h.do(request{caller: caller, method: "POST", path: "/v1/audit/runs", body: map[string]any{}}); w.Code != http.StatusForbidden && w.Code != http.StatusUnauthorized {
			t.Errorf("POST as %q: %d", caller, w.Code)
		}
	}
	if runs, _ := h.st.AuditRuns(t.Context(), 10); len(runs) != 1 {
		t.Errorf("refused requests recorded runs: %+v", runs)
	}

	close(held.release)
	done := h.waitAuditRun(run.ID)
	if done.Status != store.AuditDone || done.FinishedAt == nil || done.Counts.Findings != 1 || done.Counts.New != 1 || done.Counts.Open != 1 {
		t.Errorf("run = %+v", done)
	}
	if p := done.Progress; p.ChecksDone != 1 || p.Devices < 1 || p.Findings != 1 {
		t.Errorf("progress = %+v", p)
	}
	// Once it ended the node takes the next run.
	next := call[store.AuditRun](h, request{caller: "operator", method: "POST", path: "/v1/audit/runs", body: map[string]any{"checks": []string{"weak-key"}}}, http.StatusAccepted)
	h.waitAuditRun(next.ID)
}

// TestAuditRunFailureAndStop: a run whose check fails is recorded failed
// with the reason; a stopping node refuses new runs with 503, recording
// nothing.
func TestAuditRunFailureAndStop(t *testing.T) {
	h, _, r := heldHarness(t, errors.New("disk on fire"))
	h.deviceIn(factory1, fleet.StateActive)
	started := call[store.AuditRun](h, request{caller: "admin", method: "POST", path: "/v1/audit/runs", body: map[string]any{}}, http.StatusAccepted)
	failed := h.waitAuditRun(started.ID)
	if failed.Status != store.AuditFailed || !strings.Contains(failed.Error, "disk on fire") || failed.FinishedAt == nil {
		t.Errorf("failed run = %+v", failed)
	}
	if err := r.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := h.do(request{caller: "admin", method: "POST", path: "/v1/audit/runs", body: map[string]any{}})
	if e := errorOf(t, w); w.Code != http.StatusServiceUnavailable || !strings.Contains(e.Message, "stopping") {
		t.Errorf("POST on a stopping node: %d %+v", w.Code, e)
	}
	if runs, _ := h.st.AuditRuns(t.Context(), 10); len(runs) != 1 {
		t.Errorf("runs = %+v", runs)
	}
}

// TestAuditRouteStatuses: each audit route answers success with the
// status docs/api-contract.md gives it (200 where the row names none).
func TestAuditRouteStatuses(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "api-contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`→ (\d{3})`)
	for _, rt := range auditRoutes() {
		prefix := "| " + rt.method + " | `" + rt.pattern + "` |"
		var row string
		for line := range strings.SplitSeq(string(raw), "\n") {
			if strings.HasPrefix(line, prefix) {
				row = line
				break
			}
		}
		if row == "" {
			t.Errorf("%s %s has no row in docs/api-contract.md", rt.method, rt.pattern)
			continue
		}
		want := http.StatusOK
		if m := code.FindStringSubmatch(row); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		if rt.status != want {
			t.Errorf("%s %s answers %d, the contract says %d", rt.method, rt.pattern, rt.status, want)
		}
	}
}
