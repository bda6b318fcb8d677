package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything that differs between SQLite and PostgreSQL. The
// store writes every statement once, with ? placeholders and the syntax the
// two share (ON CONFLICT DO NOTHING, row values, LIMIT); a dialect only
// renumbers placeholders, names column types in migrations, adds row locks,
// recognises unique-key violations and picks the fastest bulk-load path.
type dialect interface {
	// name is what Store.Backend reports.
	name() string
	// rebind rewrites ? placeholders into the backend's form.
	rebind(query string) string
	// types replaces the {{type}} tokens of the migration files.
	types() *strings.Replacer
	// forUpdate is appended to a SELECT that reads a row of the table
	// aliased alias that it will rewrite.
	forUpdate(alias string) string
	// isUniqueViolation reports whether err is a unique or primary key
	// violation.
	isUniqueViolation(err error) bool
	// lockMigrations serialises migrations across processes sharing the
	// database, on the one connection migrations run on.
	lockMigrations(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// bulkInsert writes many rows into one table inside t.
	bulkInsert(ctx context.Context, t *txn, rows *bulkRows) error
	// maxParams is how many bind parameters one statement may carry.
	maxParams() int
	// unindexed wraps a column reference so the planner will not use an
	// index for the condition it appears in, where the language has a way
	// to say so.
	unindexed(col string) string
}

// sqliteDialect targets modernc.org/sqlite. Writers are serialised by the
// store's single write connection, so no row locks are needed: the write
// transaction itself (BEGIN IMMEDIATE) is the lock.
type sqliteDialect struct{}

func (sqliteDialect) name() string               { return "sqlite" }
func (sqliteDialect) rebind(query string) string { return query }
func (sqliteDialect) forUpdate(string) string    { return "" }

// maxParams stays below SQLite's default limit of 32766 host parameters.
func (sqliteDialect) maxParams() int { return 32000 }

// unindexed uses SQLite's documented unary-plus idiom.
func (sqliteDialect) unindexed(col string) string { return "+" + col }

func (sqliteDialect) types() *strings.Replacer {
	return strings.NewReplacer(
		"{{key}}", "TEXT",
		"{{int64}}", "INTEGER",
		// TIMESTAMP makes the driver hand back time.Time, as pgx does.
		"{{time}}", "TIMESTAMP",
		"{{without_rowid}}", "WITHOUT ROWID",
	)
}

func (sqliteDialect) isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// lockMigrations needs nothing on SQLite: each migration runs in a
// BEGIN IMMEDIATE transaction that rechecks schema_migrations, which already
// excludes every other writer of the file.
func (sqliteDialect) lockMigrations(context.Context, *sql.Conn) (func(), error) {
	return func() {}, nil
}

func (d sqliteDialect) bulkInsert(ctx context.Context, t *txn, rows *bulkRows) error {
	return insertMultiRow(ctx, t, d, rows)
}

// postgresDialect targets PostgreSQL through pgx's database/sql adapter.
type postgresDialect struct{}

func (postgresDialect) name() string                  { return "postgres" }
func (postgresDialect) forUpdate(alias string) string { return " FOR UPDATE OF " + alias }

// maxParams stays below the protocol's limit of 65535 parameters.
func (postgresDialect) maxParams() int { return 65000 }

// unindexed has no PostgreSQL equivalent; ordering list queries by the
// driving index's whole key steers PostgreSQL instead.
func (postgresDialect) unindexed(col string) string { return col }

func (postgresDialect) types() *strings.Replacer {
	return strings.NewReplacer(
		// Byte-order collation makes keyset pagination order match Go's
		// string order and lets range scans serve serial prefixes.
		"{{key}}", `TEXT COLLATE "C"`,
		"{{int64}}", "BIGINT",
		"{{time}}", "TIMESTAMPTZ",
		"{{without_rowid}}", "",
	)
}

// rebind turns ? into $1, $2, ... outside string literals and quoted names.
func (postgresDialect) rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (postgresDialect) isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// migrationLockKey is the advisory lock every Muster node takes before it
// migrates, so nodes starting together migrate one after the other. It is
// "muster" in ASCII.
const migrationLockKey int64 = 0x6d7573746572

func (postgresDialect) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	return func() {
		// A fresh context: the unlock must happen even when ctx was cancelled,
		// or the session would hold the lock until the pool closes it.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}, nil
}

// copyThreshold is the row count from which COPY beats a multi-row INSERT;
// below it the extra protocol round trips of COPY cost more than they save.
const copyThreshold = 64

// bulkInsert streams large row sets with COPY on the transaction's own
// connection, so they commit or roll back with the rest of the transaction.
func (d postgresDialect) bulkInsert(ctx context.Context, t *txn, rows *bulkRows) error {
	n := rows.len()
	if n < copyThreshold {
		return insertMultiRow(ctx, t, d, rows)
	}
	width := len(rows.cols)
	return t.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{rows.table}, rows.cols,
			pgx.CopyFromSlice(n, func(i int) ([]any, error) {
				return rows.vals[i*width : (i+1)*width], nil
			}))
		if err != nil {
			return fmt.Errorf("copy into %s: %w", rows.table, err)
		}
		return nil
	})
}
