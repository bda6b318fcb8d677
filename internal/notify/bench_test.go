package notify

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/muster-iot/muster/internal/store/pgtest"
)

// BenchmarkNotifyRoundTrip measures how long a change notice takes from a
// committed pg_notify on one connection to the hub of a listening node:
// the part of the "every node within one second" budget that notification
// costs. One op is one notice sent and heard.
func BenchmarkNotifyRoundTrip(b *testing.B) {
	url := pgtest.URL(b)
	if url == "" {
		b.Skip(pgtest.Env + " not set")
	}
	h := NewHub()
	got := make(chan string, 1024)
	h.Subscribe(Templates, func(p string) { got <- p })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Listen(ctx, url, nil) }()
	for p := <-got; p != All; p = <-got {
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := 0; b.Loop(); i++ {
		want := "bench-" + strconv.Itoa(i)
		if _, err := conn.Exec(context.Background(), "SELECT pg_notify($1, $2)", Templates, want); err != nil {
			b.Fatal(err)
		}
		for p := <-got; p != want; p = <-got {
		}
	}
}
