package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrationFiles are the schema changes, applied in version order. A file is
// named NNNN_title.sql and, once released, never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema change.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: name must start with a positive version number and '_'", base)
		}
		body, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// Migrate applies the migrations the database has not seen yet. It is
// idempotent and safe to run from several processes at once: on PostgreSQL
// they queue on an advisory lock, on SQLite on the write lock, and each
// migration rechecks schema_migrations inside its own transaction.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := s.d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer unlock()

	types := s.d.types()
	if _, err := conn.ExecContext(ctx, types.Replace(`CREATE TABLE IF NOT EXISTS schema_migrations (
	version    {{int64}} PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at {{time}} NOT NULL
)`)); err != nil {
		return fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("store: migrate: read schema version: %w", err)
	}
	if known := ms[len(ms)-1].version; newest.Valid && int(newest.Int64) > known {
		return fmt.Errorf("store: database schema version %d is newer than this build knows (%d): upgrade muster before using this database", newest.Int64, known)
	}
	for _, m := range ms {
		applied, err := s.applyMigration(ctx, conn, m, types)
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if applied {
			s.log.InfoContext(ctx, "store: applied migration", "version", m.version, "name", m.name, "backend", s.Backend())
		}
	}
	return nil
}

// applyMigration runs m in one transaction unless it is already recorded.
func (s *Store) applyMigration(ctx context.Context, conn *sql.Conn, m migration, types *strings.Replacer) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !applied {
			_ = tx.Rollback()
		}
	}()
	var one int
	err = tx.QueryRowContext(ctx, s.d.rebind("SELECT 1 FROM schema_migrations WHERE version = ?"), m.version).Scan(&one)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	if _, err := tx.ExecContext(ctx, types.Replace(m.sql)); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, s.clock()); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}
