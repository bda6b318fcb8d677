package store

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"sync"
	"time"
)

// SQLite's WAL must be copied back into the database file now and then (a
// checkpoint). By default the connection that commits does it, so every
// large write transaction also pays for copying and fsyncing the pages of
// the one before. The checkpointer does it on its own connection and
// goroutine instead, overlapping the writer's next transaction.

const (
	// checkpointEvery is how often the checkpointer runs when nothing
	// prompts it.
	checkpointEvery = time.Second
	// checkpointGap is the least time between two checkpoints. A
	// checkpoint copies every page the WAL holds since the last one and
	// syncs the WAL and the database file; under steady commits, running
	// one per commit copies and syncs the same hot pages (index leaves,
	// the newest event and certificate pages) over and over, while one
	// per gap copies each once. Commits do not wait for checkpoints: a
	// commit that answered survives a crash of the process as before; in
	// NORMAL mode only checkpoints sync the WAL, so against a power cut,
	// which NORMAL does not cover, the window grows to this gap.
	checkpointGap = 100 * time.Millisecond
	// maxWALBytes is the WAL size at which the writer makes the WAL start
	// over. The checkpointer copies pages back but cannot rewind the WAL
	// while the writer keeps appending: under steady writes it would grow
	// without end, and every read would search an ever larger WAL index.
	// RESTART waits for the checkpointer's last copies and for readers to
	// move on; it finds most pages copied already.
	maxWALBytes = 256 << 20
)

type checkpointer struct {
	db      *sql.DB
	walPath string
	log     *slog.Logger
	kick    chan struct{}
	stop    chan struct{}
	done    sync.WaitGroup
}

func startCheckpointer(db *sql.DB, dbPath string, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, walPath: dbPath + "-wal", log: log, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	c.done.Go(c.run)
	return c
}

func (c *checkpointer) run() {
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-tick.C:
		}
		// PASSIVE never blocks the writer or readers; what it cannot copy
		// now it copies next time.
		if _, err := c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			c.log.Warn("store: SQLite checkpoint failed", "err", err)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointGap):
		}
	}
}

// committed tells the checkpointer that a write transaction committed, and
// checkpoints on the writer's own connection if the WAL has grown too large.
func (c *checkpointer) committed(ctx context.Context, conn *sql.Conn) {
	select {
	case c.kick <- struct{}{}:
	default:
	}
	if fi, err := os.Stat(c.walPath); err == nil && fi.Size() > maxWALBytes {
		if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)"); err != nil {
			c.log.WarnContext(ctx, "store: SQLite checkpoint failed", "err", err)
		}
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	c.done.Wait()
	return c.db.Close()
}
