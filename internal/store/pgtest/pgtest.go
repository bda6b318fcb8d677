// Package pgtest gives tests their own PostgreSQL schema on the server that
// MUSTER_TEST_DATABASE_URL names, so test runs and parallel tests never see
// each other's rows.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Env names the PostgreSQL server tests use. CI sets it and fails when a
// test skipped for want of it.
const Env = "MUSTER_TEST_DATABASE_URL"

// URL creates an empty schema muster_test_<random> and returns a database
// URL whose connections use it; the schema is dropped when the test ends.
// It returns "" when Env is unset: the caller skips, or falls back to SQLite.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		return ""
	}
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("parse %s: %v", Env, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", Env, err)
	}
	admin := stdlib.OpenDB(*cfg)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "muster_test_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// Cleanups run last-in first-out, so stores opened on this schema
		// after URL returned are closed by now.
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
