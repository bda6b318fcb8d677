package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// forEachBackend runs fn against a fresh SQLite store and, when
// MUSTER_TEST_DATABASE_URL is set, a fresh PostgreSQL schema.
func forEachBackend(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite://"+filepath.Join(t.TempDir(), "muster.db")) })
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		if u == "" {
			t.Skip("MUSTER_TEST_DATABASE_URL not set: PostgreSQL tests skipped")
		}
		fn(t, u)
	})
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: url})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// putTemplate stores a provisioning template serving model m1 and m2.
func putTemplate(t *testing.T, st *store.Store, name string) {
	t.Helper()
	doc := fmt.Sprintf(`{"name":%q,"models":["m1","m2"]}`, name)
	if _, err := st.PutTemplate(context.Background(), name, json.RawMessage(doc), true, "admin/test"); err != nil {
		t.Fatalf("PutTemplate: %v", err)
	}
}

// node is one node's job machinery over a store.
type node struct {
	svc    *jobs.Service
	runner *jobs.Runner
	// wait bounds runUntilFinished; a minute unless a test says otherwise.
	wait time.Duration
}

func newNode(t *testing.T, st *store.Store, name string, ttl time.Duration, chunk int) *node {
	t.Helper()
	m, err := lease.New(lease.Config{Store: st, Node: name, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	cfg := jobs.Config{Store: st, ChunkRows: chunk}
	return &node{svc: jobs.NewService(cfg), runner: jobs.NewRunner(cfg, m, 20*time.Millisecond), wait: time.Minute}
}

// runUntilFinished runs n's runner until job id is finished.
func (n *node) runUntilFinished(t *testing.T, id string) *store.Job {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.runner.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(n.wait)
	for time.Now().Before(deadline) {
		j, err := n.svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Finished() {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish within %v", id, n.wait)
	return nil
}

func start(t *testing.T, n *node, spec jobs.Spec, manifest string, format mfg.Format) *store.Job {
	t.Helper()
	j, err := n.svc.Start(context.Background(), spec, strings.NewReader(manifest), format, "admin/test")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return j
}

func results(t *testing.T, n *node, id string) []jobs.RowResult {
	t.Helper()
	var out []jobs.RowResult
	if err := n.svc.Results(context.Background(), id, false, func(r *jobs.RowResult) error {
		out = append(out, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func countDevices(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow("SELECT COUNT(*) FROM devices").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// registerManifest is n good register rows, JSON lines.
func registerManifest(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"serial":"SN-%06d","owner":"acme"}`+"\n", i)
	}
	return b.String()
}
