package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config says where the registry lives.
type Config struct {
	// URL selects the database: "" for SQLite at DataDir/muster.db,
	// "postgres://..." or "postgresql://..." for PostgreSQL, and
	// "sqlite://PATH" or "file:PATH" for SQLite at PATH.
	URL string
	// DataDir holds the SQLite database when URL is empty.
	DataDir string
	// Logger receives migration and maintenance messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for timestamps; nil means time.Now. Tests set it.
	Now func() time.Time
	// Notifier, when set, hears of committed changes to what nodes cache
	// (SQLite only; see Notifier).
	Notifier Notifier
}

// Store is Muster's registry: devices, their histories and API tokens, in
// SQLite or PostgreSQL. It is safe for concurrent use.
type Store struct {
	d dialect
	// w carries every write transaction. On SQLite it is a single
	// connection: SQLite admits one writer at a time, and queueing writers
	// in the pool is cheaper and fairer than letting them spin on
	// SQLITE_BUSY.
	w *sql.DB
	// r carries reads. On SQLite it is a separate pool of read-only
	// connections, which WAL lets run beside the writer; on PostgreSQL it is w.
	r *sql.DB
	// ckpt moves SQLite checkpoints off the writer; nil on PostgreSQL.
	ckpt *checkpointer
	// wstmts and rstmts keep the writer's and the readers' prepared
	// statements; nil on PostgreSQL.
	wstmts, rstmts *stmtCache
	now            func() time.Time
	log            *slog.Logger
	notifier       Notifier
	// probeCap and scanWindow tune how SQLite list queries are planned;
	// they are probeCap and scanWindow, smaller only in tests.
	probeCap, scanWindow int
}

// Open connects to the database cfg names and applies pending migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{now: cfg.Now, log: cfg.Logger, notifier: cfg.Notifier, probeCap: probeCap, scanWindow: scanWindow}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	backend, target, err := parseURL(cfg)
	if err != nil {
		return nil, err
	}
	switch backend {
	case "postgres":
		err = s.openPostgres(ctx, target)
	default:
		err = s.openSQLite(ctx, target)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// parseURL returns the backend and, for SQLite, the file path or, for
// PostgreSQL, the connection string.
func parseURL(cfg Config) (backend, target string, err error) {
	u := cfg.URL
	switch {
	case u == "":
		if cfg.DataDir == "" {
			return "", "", errors.New("store: no database configured: set a data directory or a database URL")
		}
		return "sqlite", filepath.Join(cfg.DataDir, "muster.db"), nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return "postgres", u, nil
	case strings.HasPrefix(u, "sqlite://"):
		target = strings.TrimPrefix(u, "sqlite://")
	case strings.HasPrefix(u, "file:"):
		target = strings.TrimPrefix(u, "file:")
	default:
		scheme, _, _ := strings.Cut(u, ":")
		return "", "", fmt.Errorf("store: unsupported database URL scheme %q: use postgres://, sqlite://PATH or file:PATH", scheme)
	}
	if target == "" || strings.ContainsRune(target, '?') {
		return "", "", fmt.Errorf("store: database URL %q: give a SQLite file path without query parameters", u)
	}
	return "sqlite", target, nil
}

func (s *Store) openSQLite(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("store: create database directory: %w", err)
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		return fmt.Errorf("store: open SQLite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	// The first connection switches the file to WAL before any reader opens.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return fmt.Errorf("store: open SQLite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		w.Close()
		return fmt.Errorf("store: open SQLite %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	ck, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		w.Close()
		r.Close()
		return fmt.Errorf("store: open SQLite %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s.d, s.w, s.r = sqliteDialect{}, w, r
	s.wstmts, s.rstmts = newStmtCache(w), newStmtCache(r)
	s.ckpt = startCheckpointer(ck, path, s.log)
	return nil
}

// sqliteDSN configures every connection: WAL so readers never block the
// writer, NORMAL sync (durable across application crashes; a power cut may
// lose the last transactions but never corrupts), a generous busy timeout
// for other processes sharing the file, and a page cache sized for the
// registry's indexes. 8 KiB pages (set when the file is created) hold a
// whole device row and halve the WAL frames, and so the write calls, that
// a commit costs.
func sqliteDSN(path string, write bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous(NORMAL)")
	v.Add("_pragma", "temp_store(MEMORY)")
	if write {
		v.Set("_txlock", "immediate")
		// page_size must precede the switch to WAL, which the driver
		// makes after every _pragma.
		v.Add("_pragma", "page_size(8192)")
		v.Set("_journal_mode", "WAL")
		// The checkpointer does this job off the writer's path.
		v.Add("_pragma", "wal_autocheckpoint(0)")
		// 64 MiB. Each MiB of page cache costs about 3.4 MB of resident
		// memory (8 KiB pages, modernc's allocator); 128 MiB put
		// a 1M-row job at 500 MB, 64 MiB at 270 MB, with the same CPU time
		// for jobs and bulk inserts (BENCHMARKS.md, "SQLite page caches").
		v.Add("_pragma", "cache_size(-65536)")
		v.Add("_pragma", "journal_size_limit(67108864)")
	} else {
		v.Add("_pragma", "cache_size(-32768)")
		v.Add("_pragma", "query_only(1)")
	}
	return path + "?" + v.Encode()
}

func (s *Store) openPostgres(ctx context.Context, dsn string) error {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("store: parse PostgreSQL URL: %w", err)
	}
	// Statements are prepared once per connection. After five runs
	// PostgreSQL may switch to a plan made without the parameter values,
	// and for list queries, where 'active' and 'rejected' call for different
	// plans, that plan can be a hundred times slower.
	// The store's queries read a few pages each; starting parallel workers
	// for them costs more than it saves and, on a busy host, makes the
	// slowest requests several times slower. A URL may still set these.
	for param, value := range map[string]string{
		"plan_cache_mode":                 "force_custom_plan",
		"max_parallel_workers_per_gather": "0",
	} {
		if _, set := pc.RuntimeParams[param]; !set {
			pc.RuntimeParams[param] = value
		}
	}
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(4 * runtime.GOMAXPROCS(0))
	db.SetMaxIdleConns(2 * runtime.GOMAXPROCS(0))
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("store: connect to PostgreSQL at %s: %w", pc.Host, err)
	}
	s.d, s.w, s.r = postgresDialect{}, db, db
	return nil
}

// Close releases the database. On SQLite it first lets SQLite refresh the
// planner statistics it judges stale, as SQLite recommends on close.
func (s *Store) Close() error {
	var errs []error
	s.wstmts.close()
	s.rstmts.close()
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
		if _, err := s.w.Exec("PRAGMA optimize"); err != nil {
			s.log.Warn("store: PRAGMA optimize on close failed", "err", err)
		}
		if _, err := s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			s.log.Warn("store: final checkpoint failed", "err", err)
		}
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Backend names the database in use: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.d.name() }

// DB returns the underlying database handle for packages that keep their
// own tables next to the registry, and for tests. On SQLite it is the single
// write connection, so statements through it never collide with the store's
// own writes; do not hold a transaction on it while calling the Store.
func (s *Store) DB() *sql.DB { return s.w }

// clock is the current time as stored: UTC with microsecond precision, the
// finest PostgreSQL keeps, so values read back equal values written.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}
