package server

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// leaseNode runs a node with cfg's database and lease TTL until stop.
type leaseNode struct {
	srv  *Server
	stop func()
}

func runLeaseNode(t *testing.T, url, name string, ttl time.Duration) *leaseNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, Config{
		DataDir: filepath.Join(t.TempDir(), name), DatabaseURL: url, NodeID: name, LeaseTTL: ttl,
		APIAddr: "127.0.0.1:0", DeviceAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		CAPassphrase: []byte("shared passphrase"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatalf("start node %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var stopped bool
	n := &leaseNode{srv: srv, stop: func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: Run: %v", name, err)
		}
	}}
	t.Cleanup(n.stop)
	return n
}

// waitFor polls cond for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}

// On PostgreSQL the nodes publish CRLs through the crl lease, with the
// configured lease TTL; when the publisher stops, the other node takes
// publication over.
func TestCRLLeaseAcrossNodes(t *testing.T) {
	url := pgtest.URL(t)
	if url == "" {
		t.Skip(pgtest.Env + " not set")
	}
	const ttl = 2 * time.Second
	nodes := map[string]*leaseNode{"a": runLeaseNode(t, url, "a", ttl)}
	st := nodes["a"].srv.Store()
	var held *store.Lease
	waitFor(t, 10*time.Second, "a node takes the CRL lease", func() bool {
		var err error
		held, err = st.GetLease(t.Context(), revocation.CRLLease)
		return err == nil && held.ExpiresAt.After(time.Now())
	})
	// The lease lives LeaseTTL, not the default: it never expires later
	// than that from now.
	if left := time.Until(held.ExpiresAt); left > ttl {
		t.Errorf("the CRL lease expires in %v, beyond the configured TTL %v", left, ttl)
	}
	nodes["b"] = runLeaseNode(t, url, "b", ttl)
	if l, err := st.GetLease(t.Context(), revocation.CRLLease); err != nil || l.Holder != "a" {
		t.Fatalf("CRL lease with two nodes = %+v, %v; want still a's", l, err)
	}

	// The publisher stops (releasing its lease); the other takes over.
	nodes["a"].stop()
	st = nodes["b"].srv.Store()
	waitFor(t, 5*ttl, "node b takes the CRL lease over", func() bool {
		l, err := st.GetLease(t.Context(), revocation.CRLLease)
		return err == nil && l.Holder == "b" && l.Token > held.Token
	})
}

// A single SQLite node publishes CRLs on its own, as before leases: it
// never takes the crl lease.
func TestSQLiteNodePublishesWithoutLease(t *testing.T) {
	n := runLeaseNode(t, "", "solo", 0)
	st := n.srv.Store()
	waitFor(t, 10*time.Second, "the node publishes its first CRLs", func() bool {
		cas, err := st.ListCAs(t.Context(), store.CAFilter{})
		if err != nil || len(cas) == 0 {
			return false
		}
		_, err = st.LatestCRL(t.Context(), cas[0].ID)
		return err == nil
	})
	if l, err := st.GetLease(t.Context(), revocation.CRLLease); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a SQLite node took the CRL lease: %+v, %v", l, err)
	}
}
