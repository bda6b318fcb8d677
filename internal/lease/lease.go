// Package lease makes one node of several sharing a database do a piece of
// work at a time: bulk jobs, and later CRL regeneration or scheduled audits.
// A node acquires a named lease for a time to live and renews it while it
// works; when the node dies the lease expires and another node takes it
// over. Every acquisition gets a larger fencing token, and writes guarded by
// the store's lease check cannot commit once the lease changed hands, so a
// node that lost its lease (paused, partitioned) cannot overwrite its
// successor's work.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// DefaultTTL is how long a lease lives without renewal: the longest a dead
// node's work waits before another node takes it over.
const DefaultTTL = 10 * time.Second

// ErrHeld means another live node holds the lease.
var ErrHeld = store.ErrLeaseHeld

// Store keeps the leases; *store.Store is one.
type Store interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*store.Lease, error)
	RenewLease(ctx context.Context, l *store.Lease, ttl time.Duration) error
	ReleaseLease(ctx context.Context, l *store.Lease) error
}

// Config configures a Manager.
type Config struct {
	Store Store
	// Node names this node: the holder of its leases.
	Node string
	// TTL is the leases' time to live; DefaultTTL when zero. They are
	// renewed every third of it.
	TTL    time.Duration
	Logger *slog.Logger
}

// Manager acquires and renews this node's leases.
type Manager struct {
	st   Store
	node string
	ttl  time.Duration
	log  *slog.Logger
}

// New returns a Manager for cfg.Node.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Node == "" {
		return nil, errors.New("lease: a store and a node name are required")
	}
	m := &Manager{st: cfg.Store, node: cfg.Node, ttl: cfg.TTL, log: cfg.Logger}
	if m.ttl <= 0 {
		m.ttl = DefaultTTL
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// Node is the holder name of this manager's leases.
func (m *Manager) Node() string { return m.node }

// TTL is the leases' time to live.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Held is a lease this node holds. It is renewed in the background until
// Release, or until renewal fails for good: then Context is cancelled and
// the work it guards must stop (its writes would be refused anyway).
type Held struct {
	m      *Manager
	fence  store.Lease // what writes are fenced with; never changes
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// TryAcquire takes lease name if no other live node holds it (ErrHeld
// otherwise) and starts renewing it. The returned Context derives from ctx.
func (m *Manager) TryAcquire(ctx context.Context, name string) (*Held, error) {
	l, err := m.st.AcquireLease(ctx, name, m.node, m.ttl)
	if err != nil {
		return nil, err
	}
	h := &Held{m: m, fence: *l, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(ctx)
	go h.renew(*l)
	m.log.DebugContext(ctx, "lease acquired", "lease", name, "token", l.Token)
	return h, nil
}

// Lease is the holding, for the store's fenced writes.
func (h *Held) Lease() *store.Lease {
	l := h.fence
	return &l
}

// Context is cancelled when the lease is lost or released.
func (h *Held) Context() context.Context { return h.ctx }

// renew extends the lease every third of its TTL. A transient failure is
// retried until the lease would have expired; a lost lease ends it at once.
func (h *Held) renew(l store.Lease) {
	defer close(h.done)
	every := h.m.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		err := h.m.st.RenewLease(h.ctx, &l, h.m.ttl)
		switch {
		case err == nil:
			continue
		case h.ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrLeaseLost) || !time.Now().Before(l.ExpiresAt):
			h.m.log.Warn("lease lost; stopping the work it guards", "lease", l.Name, "token", l.Token, "err", err)
			h.cancel()
			return
		default:
			h.m.log.Warn("lease renewal failed; retrying", "lease", l.Name, "err", err)
		}
	}
}

// Release stops renewing and gives the lease up, so another node can take
// it at once. It is safe to call more than once.
func (h *Held) Release(ctx context.Context) error {
	var err error
	h.once.Do(func() {
		h.cancel()
		<-h.done
		if rerr := h.m.st.ReleaseLease(context.WithoutCancel(ctx), &h.fence); rerr != nil {
			err = fmt.Errorf("lease: release %s: %w", h.fence.Name, rerr)
		}
	})
	return err
}
