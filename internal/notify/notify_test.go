package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/muster-iot/muster/internal/store/pgtest"
)

func TestHubDeliversToEverySubscriberOfTheChannel(t *testing.T) {
	h := NewHub()
	var a, b, other []string
	h.Subscribe(Devices, func(p string) { a = append(a, p) })
	h.Subscribe(Devices, func(p string) { b = append(b, p) })
	h.Subscribe(CAs, func(p string) { other = append(other, p) })
	h.Publish(Devices, "dev_1")
	if len(a) != 1 || a[0] != "dev_1" || len(b) != 1 || b[0] != "dev_1" {
		t.Fatalf("subscribers heard %v and %v, want [dev_1] each", a, b)
	}
	if len(other) != 0 {
		t.Fatalf("a subscriber of another channel heard %v", other)
	}
	h.publishAll()
	if a[1] != All || other[0] != All {
		t.Fatalf("publishAll: heard %v and %v, want All on every channel", a, other)
	}
}

func TestListenRefusesABadURL(t *testing.T) {
	if err := NewHub().Listen(t.Context(), "postgres://%zz", nil); err == nil {
		t.Fatal("Listen accepted an unparsable URL")
	}
}

// TestListenReturnsWhenCancelledWhileUnreachable: a node whose database is
// down keeps retrying, and stops when told.
func TestListenReturnsWhenCancelledWhileUnreachable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewHub().Listen(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", nil) }()
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context ended")
	}
}

// TestListenRelaysAndRecoversFromALostConnection: notifications reach the
// hub; when the server drops the listening session, the listener
// reconnects, announces All (what was sent meanwhile is lost), and relays
// again.
func TestListenRelaysAndRecoversFromALostConnection(t *testing.T) {
	base := pgtest.URL(t)
	if base == "" {
		t.Skip(pgtest.Env + " not set")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	app := "muster-notify-test-" + hex.EncodeToString(rnd[:])
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	h := NewHub()
	got := make(chan string, 64)
	h.Subscribe(Revocations, func(p string) { got <- p })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Listen(ctx, u.String(), nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	}()
	await := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case p := <-got:
				if p == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q notice", want)
			}
		}
	}
	await(All)

	admin, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	send := func(payload string) {
		t.Helper()
		if _, err := admin.Exec(context.Background(), "SELECT pg_notify($1, $2)", Revocations, payload); err != nil {
			t.Fatal(err)
		}
	}
	send("first-" + app)
	await("first-" + app)

	if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
		t.Fatal(err)
	}
	await(All) // reconnected
	send("second-" + app)
	await("second-" + app)
}
