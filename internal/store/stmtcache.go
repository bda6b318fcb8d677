package store

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// maxCachedStmts bounds a statement cache. The hot statements are a few
// dozen; list queries and multi-row inserts vary with their input, so
// without a bound the cache would grow with every distinct filter.
const maxCachedStmts = 256

// maxCachedQuery is the longest query the cache keeps. Longer ones are
// multi-row inserts of batches, whose execution dwarfs their parsing and
// whose row counts vary from batch to batch.
const maxCachedQuery = 4096

// stmtCache keeps SQLite statements prepared by query text. The driver
// parses and plans a statement on every call that is not prepared, which
// on a provisioning costs as much as the writes themselves; a prepared
// statement is parsed once per connection. PostgreSQL needs none: pgx
// caches prepared statements per connection itself.
//
// On the writer, a statement cannot be prepared while a transaction holds
// the single connection (database/sql would wait for that very
// connection), so a miss there is only noted and runs unprepared; the
// writer prepares what was noted once the transaction has given the
// connection back (prepareNoted).
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	// m maps a query to its statement; nil for a query that could not be
	// prepared, which then always runs unprepared.
	m map[string]*sql.Stmt
	// noted are writer misses waiting for prepareNoted.
	noted map[string]bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt), noted: make(map[string]bool)}
}

// cacheable reports whether query is worth keeping prepared. Several
// statements in one string are executed, never prepared, by the driver.
func cacheable(query string) bool {
	return len(query) <= maxCachedQuery && !strings.Contains(query, ";")
}

// lookup returns query's statement, or nil after noting the miss for
// prepareNoted.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if c == nil || !cacheable(query) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	if !ok && len(c.noted) < maxCachedStmts {
		c.noted[query] = true
	}
	return st
}

// prepared returns query's statement, preparing it now on a miss: for a
// pool whose callers never hold a connection while they ask (the read
// pool). It returns nil when the query is not to be prepared.
func (c *stmtCache) prepared(ctx context.Context, query string) *sql.Stmt {
	if c == nil || !cacheable(query) {
		return nil
	}
	c.mu.Lock()
	st, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil // not the query's fault: try again next time
	case err != nil:
		st = nil // the unprepared call reports the error to its caller
	}
	return c.put(query, st)
}

// prepareNoted prepares the writer's noted misses; the caller must not
// hold the writer's connection.
func (c *stmtCache) prepareNoted(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	var queries []string
	for q := range c.noted {
		if _, ok := c.m[q]; !ok {
			queries = append(queries, q)
		}
	}
	clear(c.noted)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return // not the query's fault: try again next time
			}
			st = nil
		}
		c.put(q, st)
	}
}

// put stores st for query, evicting an arbitrary entry when the cache is
// full, and returns the statement the cache now holds for query.
func (c *stmtCache) put(query string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[query]; ok {
		// Prepared concurrently: keep the first.
		if st != nil {
			st.Close()
		}
		return old
	}
	if len(c.m) >= maxCachedStmts {
		for q, old := range c.m {
			// Closing waits for the statement's current users.
			if old != nil {
				old.Close()
			}
			delete(c.m, q)
			break
		}
	}
	c.m[query] = st
	return st
}

// close closes every statement; the cache is unusable afterwards.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		if st != nil {
			st.Close()
		}
		delete(c.m, q)
	}
}
