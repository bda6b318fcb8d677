package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/notify"
)

// heard collects the notices a hub delivers on one channel.
type heard chan string

// hubFor opens a store on u whose notices reach the returned channel: on
// SQLite through Config.Notifier, on PostgreSQL through a listener, which
// is ready when this returns.
func hubFor(t *testing.T, u, channel string) (*Store, heard) {
	t.Helper()
	hub := notify.NewHub()
	got := make(heard, 1024)
	hub.Subscribe(channel, func(p string) { got <- p })
	s, err := Open(t.Context(), Config{URL: u, Notifier: hub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Backend() == "postgres" {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- hub.Listen(ctx, u, nil) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Listen: %v", err)
			}
		})
		got.await(t, notify.All) // announced once LISTEN is in place
	}
	return s, got
}

// await waits for payload, skipping others (parallel tests on the same
// PostgreSQL database share its channels), and fails on unwanted ones.
func (h heard) await(t *testing.T, payload string, unwanted ...string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-h:
			for _, u := range unwanted {
				if p == u {
					t.Fatalf("heard %q, which must not be notified", p)
				}
			}
			if p == payload {
				return
			}
		case <-timeout:
			t.Fatalf("no notice %q", payload)
		}
	}
}

// TestDeviceChangesAreNotifiedOnCommit: a committed device update is
// notified with the device's id; a rolled-back one is not.
func TestDeviceChangesAreNotifiedOnCommit(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, u string) {
		s, got := hubFor(t, u, notify.Devices)
		a := mustCreate(t, s, newTestDevice("SN-A"))
		b := mustCreate(t, s, newTestDevice("SN-B"))
		refuse := errors.New("refused")
		_, err := s.UpdateDevice(t.Context(), a.ID, 0, "tester", func(d *fleet.Device) (*Change, error) {
			d.Attributes = map[string]string{"site": "x"}
			return &Change{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got.await(t, a.ID)
		// A rolled-back write: the notice is recorded, then the
		// transaction fails after it.
		err = s.inTx(t.Context(), func(tx *txn) error {
			tx.notice(notify.Devices, "rolled-back-"+b.ID)
			return refuse
		})
		if !errors.Is(err, refuse) {
			t.Fatal(err)
		}
		if _, err := s.UpdateDevice(t.Context(), b.ID, 0, "tester", func(d *fleet.Device) (*Change, error) {
			d.Attributes = map[string]string{"site": "y"}
			return &Change{}, nil
		}); err != nil {
			t.Fatal(err)
		}
		// Notices arrive in commit order, so the rolled-back one would
		// have come before b's.
		got.await(t, b.ID, "rolled-back-"+b.ID)
	})
}

// TestBulkChangesCollapseIntoOneNotice: past maxNotices distinct payloads
// on a channel, a transaction sends notify.All alone.
func TestBulkChangesCollapseIntoOneNotice(t *testing.T) {
	forEachBackendURL(t, func(t *testing.T, u string) {
		s, got := hubFor(t, u, notify.Templates)
		marker := "bulk-" + strings.Repeat("x", 4)
		if err := s.inTx(t.Context(), func(tx *txn) error {
			for i := range maxNotices + 1 {
				tx.notice(notify.Templates, marker+string(rune('A'+i%26))+string(rune('a'+i/26)))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got.await(t, notify.All)
		// Then nothing else from that transaction.
		if err := s.inTx(t.Context(), func(tx *txn) error {
			tx.notice(notify.Templates, "after-bulk")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case p := <-got:
				if strings.HasPrefix(p, marker) {
					t.Fatalf("heard %q: the bulk transaction's notices did not collapse", p)
				}
				if p == "after-bulk" {
					return
				}
			case <-timeout:
				t.Fatal("no notice after-bulk")
			}
		}
	})
}

// BenchmarkNoticeCost measures what a change notice adds to a small write
// transaction on PostgreSQL (one pg_notify statement before commit):
// compare the two sub-benchmarks. On SQLite a notice costs a map insert.
func BenchmarkNoticeCost(b *testing.B) {
	s := openTestStore(b, pgTestURL(b))
	ctx := context.Background()
	d := newTestDevice("SN-BENCH")
	if err := s.CreateDevice(ctx, d, "bench"); err != nil {
		b.Fatal(err)
	}
	for _, withNotice := range []bool{false, true} {
		name := "without"
		if withNotice {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := s.inTx(ctx, func(t *txn) error {
					if withNotice {
						t.notice(notify.Devices, d.ID)
					}
					_, err := t.exec(ctx, "UPDATE devices SET version = version WHERE id = ?", d.ID)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
