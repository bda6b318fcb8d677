package store

import (
	"context"
	"strings"
	"sync"
	"testing"
)

func TestMigrateIsIdempotent(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		for range 2 {
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		mustEqual(t, "recorded migrations", countAll(t, s, "schema_migrations"), len(ms))
	})
}

// TestConcurrentOpen starts several nodes on one empty database at once:
// all must come up, and each migration must be applied exactly once.
func TestConcurrentOpen(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	forEachBackendURL(t, func(t *testing.T, u string) {
		const nodes = 8
		stores := make([]*Store, nodes)
		var wg sync.WaitGroup
		for i := range nodes {
			wg.Go(func() {
				s, err := Open(t.Context(), Config{URL: u})
				if err != nil {
					t.Errorf("node %d: Open: %v", i, err)
					return
				}
				stores[i] = s
			})
		}
		wg.Wait()
		for _, s := range stores {
			if s != nil {
				defer s.Close()
			}
		}
		if t.Failed() {
			return
		}
		rows, err := stores[0].DB().QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var versions []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			versions = append(versions, v)
		}
		var want []int
		for _, m := range ms {
			want = append(want, m.version)
		}
		mustEqual(t, "applied versions", versions, want)
		// Every node can write.
		for i, s := range stores {
			mustCreate(t, s, newTestDevice("SN-"+string(rune('a'+i))))
		}
	})
}

func TestOpenConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg     Config
		backend string
		target  string
		err     string
	}{
		{cfg: Config{DataDir: dir}, backend: "sqlite", target: dir + "/muster.db"},
		{cfg: Config{URL: "sqlite:///var/lib/muster/x.db"}, backend: "sqlite", target: "/var/lib/muster/x.db"},
		{cfg: Config{URL: "file:rel/x.db"}, backend: "sqlite", target: "rel/x.db"},
		{cfg: Config{URL: "postgres://u@h/db"}, backend: "postgres", target: "postgres://u@h/db"},
		{cfg: Config{URL: "postgresql://u@h/db"}, backend: "postgres", target: "postgresql://u@h/db"},
		{cfg: Config{}, err: "no database configured"},
		{cfg: Config{URL: "mysql://h/db"}, err: `unsupported database URL scheme "mysql"`},
		{cfg: Config{URL: "file:x.db?mode=ro"}, err: "without query parameters"},
	}
	for _, tc := range cases {
		backend, target, err := parseURL(tc.cfg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseURL(%+v) = %v, want error containing %q", tc.cfg, err, tc.err)
			}
			continue
		}
		if err != nil || backend != tc.backend || target != tc.target {
			t.Errorf("parseURL(%+v) = %q, %q, %v; want %q, %q", tc.cfg, backend, target, err, tc.backend, tc.target)
		}
	}

	s, err := Open(context.Background(), Config{DataDir: dir + "/nested"})
	if err != nil {
		t.Fatalf("Open(DataDir): %v", err)
	}
	mustEqual(t, "backend", s.Backend(), "sqlite")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
