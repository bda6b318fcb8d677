package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// txn is one write transaction. It keeps its connection so the PostgreSQL
// dialect can COPY on the very session that holds the transaction.
type txn struct {
	conn  *sql.Conn
	tx    *sql.Tx
	d     dialect
	stmts map[string]*sql.Stmt
	// cache is the store's writer statement cache; nil on PostgreSQL.
	cache *stmtCache
	// boms holds the BOMs this transaction has stored already.
	boms map[string]bool
	// notices are what this transaction tells other nodes' caches, by
	// channel and payload (notify.go).
	notices map[string]map[string]bool
}

// inTx runs fn in a write transaction and commits when fn returns nil.
// fn's error is returned unchanged, so callers can match it with errors.As.
func (s *Store) inTx(ctx context.Context, fn func(t *txn) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: get connection: %w", err)
	}
	// Statements the writer missed are prepared once the connection is
	// back in the pool, whatever the outcome: a rollback runs them too.
	defer s.wstmts.prepareNoted(ctx)
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	t := &txn{conn: conn, tx: tx, d: s.d, cache: s.wstmts}
	if err := fn(t); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.log.WarnContext(ctx, "store: rollback failed", "err", rbErr)
		}
		return err
	}
	if err := t.sendNotices(ctx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if s.ckpt != nil {
		s.ckpt.committed(ctx, conn)
	}
	s.publishNotices(t)
	return nil
}

func (t *txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.cached(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.d.rebind(query), args...)
}

func (t *txn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.cached(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.d.rebind(query), args...)
}

func (t *txn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.cached(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.d.rebind(query), args...)
}

// cached returns the store's prepared statement for query bound to this
// transaction, or nil when the store has not prepared it (yet).
func (t *txn) cached(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.stmts[query]; ok {
		return st
	}
	shared := t.cache.lookup(query)
	if shared == nil {
		return nil
	}
	// Bound to the transaction, the statement reuses what the shared one
	// prepared on this connection; it is released with the transaction.
	st := t.tx.StmtContext(ctx, shared)
	t.keep(query, st)
	return st
}

// prepare returns a statement prepared once per transaction, or the
// store's when it has one; it is closed with the transaction.
func (t *txn) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.cached(ctx, query); st != nil {
		return st, nil
	}
	st, err := t.tx.PrepareContext(ctx, t.d.rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	t.keep(query, st)
	return st, nil
}

func (t *txn) keep(query string, st *sql.Stmt) {
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[query] = st
}

// query runs a read outside any write transaction, on the read pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.rstmts.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, s.d.rebind(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.rstmts.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, s.d.rebind(query), args...)
}
