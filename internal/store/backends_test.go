package store

import (
	"context"
	"database/sql"
	"github.com/muster-iot/muster/internal/store/pgtest"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgEnv names the PostgreSQL server the conformance suite also runs against.
const pgEnv = "MUSTER_TEST_DATABASE_URL"

// pgSkip is the message CI greps for to notice PostgreSQL was not tested.
const pgSkip = "MUSTER_TEST_DATABASE_URL not set: PostgreSQL conformance tests skipped"

// forEachBackend runs fn as a subtest against a fresh SQLite store and, when
// MUSTER_TEST_DATABASE_URL is set, a fresh PostgreSQL schema.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openTestStore(t, sqliteTestURL(t)))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openTestStore(t, pgTestURL(t)))
	})
}

// forEachBackendURL is forEachBackend for tests that open stores themselves.
func forEachBackendURL(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteTestURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgTestURL(t)) })
}

func sqliteTestURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "muster.db")
}

func openTestStore(t testing.TB, u string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{URL: u})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// pgTestURL creates an empty schema muster_test_<random>, returns a URL
// whose connections use it, and drops it when the test ends. It skips the
// test when no server is configured.
func pgTestURL(t testing.TB) string {
	t.Helper()
	u := pgtest.URL(t)
	if u == "" {
		t.Skip(pgSkip)
	}
	return u
}

func pgAdmin(t testing.TB, base string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("parse %s: %v", pgEnv, err)
	}
	return stdlib.OpenDB(*cfg)
}
