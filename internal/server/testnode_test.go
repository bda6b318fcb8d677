package server

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/client"
)

// testNode is a whole running node for end-to-end tests.
type testNode struct {
	srv   *Server
	dir   string
	admin *client.Client
	roots *x509.CertPool
}

// runNode runs a node on cfg until the test ends, with its own data
// directory and every listener on a free loopback port, and returns it
// with an admin client that uses the node's own token. It returns once the
// node's revocation set has loaded, so the node refuses what it must.
func runNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	name := cfg.NodeID
	if name == "" {
		name = "node"
	}
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	cfg.APIAddr, cfg.DeviceAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start node %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: Run: %v", name, err)
		}
	})
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New("https://"+srv.APIAddr(), client.WithToken(strings.TrimSpace(string(token))), client.WithCAFile(filepath.Join(cfg.DataDir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for start := time.Now(); srv.rev.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("node %s: revocation set did not load", name)
		}
	}
	return &testNode{srv: srv, dir: cfg.DataDir, admin: admin, roots: roots}
}

// clientAs is a client of n's API with another token.
func (n *testNode) clientAs(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New("https://"+n.srv.APIAddr(), client.WithToken(token), client.WithCAFile(filepath.Join(n.dir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
