package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Listening on PostgreSQL.
const (
	// minBackoff and maxBackoff bound the wait between reconnections.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// idleCheck is how long the listener waits for a notification before
	// it pings the server: a connection that died without a word (a
	// partition, a failover) is found within idleCheck plus pingTimeout.
	idleCheck   = 10 * time.Second
	pingTimeout = 5 * time.Second
)

// Listen relays PostgreSQL notifications on every channel of Channels to
// the hub until ctx ends, over one dedicated connection to dsn. After each
// LISTEN, the first included, it publishes All on every channel: whatever
// was notified while it was not listening is lost, and subscribers read
// everything again instead. A lost connection is retried with exponential
// backoff; Listen returns nil when ctx ends, and an error only for a dsn
// it cannot parse.
func (h *Hub) Listen(ctx context.Context, dsn string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("notify: parse PostgreSQL URL: %w", err)
	}
	// pgx's default context handler only sets a read deadline, so timing
	// out a wait (idleCheck) leaves the connection usable.
	backoff := minBackoff
	failing := false
	for {
		conn, err := listen(ctx, cfg)
		if err == nil {
			if failing {
				log.InfoContext(ctx, "notify: listening for changes made on other nodes again")
				failing = false
			}
			backoff = minBackoff
			h.publishAll()
			err = h.relay(ctx, conn)
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		if !failing {
			log.WarnContext(ctx, "notify: not listening for changes made on other nodes; retrying (until then they arrive by periodic refresh only)", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen connects and subscribes to every channel.
func listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("notify: connect: %w", err)
	}
	for _, ch := range Channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			_ = conn.Close(context.Background())
			return nil, fmt.Errorf("notify: LISTEN %s: %w", ch, err)
		}
	}
	return conn, nil
}

// relay publishes notifications until the connection fails or ctx ends.
func (h *Hub) relay(ctx context.Context, conn *pgx.Conn) error {
	for {
		wait, cancel := context.WithTimeout(ctx, idleCheck)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			h.Publish(n.Channel, n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err):
			return fmt.Errorf("notify: wait for notifications: %w", err)
		}
		ping, cancel := context.WithTimeout(ctx, pingTimeout)
		err = conn.Ping(ping)
		cancel()
		if err != nil {
			return fmt.Errorf("notify: the listening connection stopped answering: %w", err)
		}
	}
}
