package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/store"
)

// Defaults of Config.
const (
	// DefaultRefreshInterval is how often a node reads the revocation feed.
	// With the refresh itself taking milliseconds, a revocation made on any
	// node reaches every node's device listeners well within one second.
	DefaultRefreshInterval = 250 * time.Millisecond
	// DefaultMaxStaleness is how long a node keeps accepting connections
	// on a revocation set it could not refresh (the database is
	// unreachable) before it refuses every device, because it can no
	// longer tell revoked ones apart.
	DefaultMaxStaleness = 10 * time.Second
	// DefaultCRLInterval is how often CRLs are re-signed when nothing
	// was revoked.
	DefaultCRLInterval = time.Hour
	// DefaultCRLValidity is the distance from a CRL's thisUpdate to its
	// nextUpdate: relying parties that cache CRLs use one at most this
	// long, so it bounds how stale their view can get if publication stops.
	DefaultCRLValidity = 24 * time.Hour
)

// ErrUnavailable means the node cannot tell whether a certificate is
// revoked: its revocation set has not loaded yet, or has not been
// refreshed for longer than Config.MaxStaleness. Callers fail closed.
var ErrUnavailable = errors.New("revocation status unavailable")

// Store is the part of the registry revocation works on; *store.Store
// implements it.
type Store interface {
	RevokeCertificate(ctx context.Context, caID, serial string, reason int, actor string) error
	RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error)
	RevokedSince(ctx context.Context, seq int64) ([]store.RevokedRef, int64, error)
	CertificateStatus(ctx context.Context, caID, serial string) (*store.Certificate, error)
	RevokedByCA(ctx context.Context, caID string) ([]store.RevokedEntry, error)
	SaveCRL(ctx context.Context, crl store.CRL) (bool, error)
	LatestCRL(ctx context.Context, caID string) (*store.CRL, error)
}

var _ Store = (*store.Store)(nil)

// Config configures a Service.
type Config struct {
	// Store and Issuers are required.
	Store   Store
	Issuers IssuerSource
	// Logger receives refresh failures and CRL publications; nil discards.
	Logger *slog.Logger
	// RefreshInterval defaults to DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MaxStaleness defaults to DefaultMaxStaleness; negative disables the
	// check (a set that loaded once is then trusted forever).
	MaxStaleness time.Duration
	// CRLInterval defaults to DefaultCRLInterval, CRLValidity to
	// DefaultCRLValidity. CRLValidity must exceed CRLInterval, or relying
	// parties would hold expired CRLs between two publications.
	CRLInterval time.Duration
	CRLValidity time.Duration
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// Leases, when set, makes CRL publication happen once for all nodes
	// sharing the database: only the node holding lease CRLLease signs
	// and stores CRLs (when revocations change them and when they are
	// due), the others serve what is stored, and when the holder dies
	// another node takes over within one lease period. Nil: this node
	// publishes on its own (one node, as on SQLite).
	Leases Leases
}

// Service revokes certificates and answers whether one is revoked. One
// Service runs per node; Run keeps it current.
type Service struct {
	store   Store
	issuers IssuerSource
	log     *slog.Logger
	now     func() time.Time

	refreshEvery, maxStale, crlEvery, crlValidity time.Duration

	set revokedSet
	// refreshMu makes refreshes run one at a time, so two never apply the
	// same part of the feed or move the head backwards.
	refreshMu sync.Mutex
	// publishMu makes CRL publications on this node run one at a time.
	publishMu sync.Mutex
	// dirty holds CAs whose CRL the publisher still has to renew; kick
	// wakes the publisher.
	dirtyMu sync.Mutex
	dirty   map[string]bool
	kick    chan struct{}
	// changed wakes the refresh loop: another node revoked (Changed).
	changed chan struct{}
	// leases claims CRL publication; held is this node's claim, nil when
	// another node publishes (publisher.go).
	leases  Leases
	claimMu sync.Mutex
	held    *lease.Held
}

// New returns a Service for cfg. It loads nothing: until Run's first
// refresh, IsRevoked fails closed.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Issuers == nil {
		return nil, errors.New("revocation: a service needs a store and an issuer source")
	}
	s := &Service{
		store:        cfg.Store,
		issuers:      cfg.Issuers,
		log:          cfg.Logger,
		now:          cfg.Now,
		refreshEvery: orDefault(cfg.RefreshInterval, DefaultRefreshInterval),
		maxStale:     orDefault(cfg.MaxStaleness, DefaultMaxStaleness),
		crlEvery:     orDefault(cfg.CRLInterval, DefaultCRLInterval),
		crlValidity:  orDefault(cfg.CRLValidity, DefaultCRLValidity),
		dirty:        map[string]bool{},
		kick:         make(chan struct{}, 1),
		changed:      make(chan struct{}, 1),
		leases:       cfg.Leases,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.crlValidity <= s.crlEvery {
		return nil, fmt.Errorf("revocation: CRL validity %v must be longer than the CRL interval %v", s.crlValidity, s.crlEvery)
	}
	s.set.init()
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Run keeps the node's revocation set and the CRLs current until ctx ends:
// it reads the revocation feed every RefreshInterval, renews the CRLs of
// CAs with new revocations at once, and every CRL at least every
// CRLInterval. It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	s.refreshLogged(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.publishLoop(ctx) })
	defer wg.Wait()
	tick := time.NewTicker(s.refreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.refreshLogged(ctx)
		case <-s.changed:
			s.refreshLogged(ctx)
		}
	}
}

// Changed makes Run refresh now rather than at its next tick: a node
// calls it when it hears that another node revoked something (see
// internal/notify). It never blocks; calls while a refresh is pending
// fold into it.
func (s *Service) Changed() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// refreshLogged refreshes and queues the CRLs the new revocations change.
// It logs a failing refresh once, not four times a second, and its recovery.
func (s *Service) refreshLogged(ctx context.Context) {
	changed, err := s.refresh(ctx)
	if ctx.Err() != nil {
		return // shutting down
	}
	if failing := err != nil; failing != s.set.failing.Swap(failing) {
		if failing {
			s.log.WarnContext(ctx, "revocation: cannot refresh the revocation set; device connections will be refused once it is stale",
				"max_staleness", s.maxStale, "err", err)
		} else {
			s.log.InfoContext(ctx, "revocation: revocation set refreshed again")
		}
	}
	s.markDirty(changed...)
}

// RevokeCertificate revokes the certificate caID issued with serial for an
// RFC 5280 reason code (see ParseReason), as the store's RevokeCertificate
// does, then applies it to this node at once and renews the CA's CRL
// before it returns. Other nodes apply it when they hear of it (Changed),
// or else within their refresh interval.
func (s *Service) RevokeCertificate(ctx context.Context, caID, serial string, reason int, actor string) error {
	if err := s.store.RevokeCertificate(ctx, caID, serial, reason, actor); err != nil {
		return err
	}
	s.applyNow(ctx)
	return nil
}

// RevokeDeviceCertificates revokes every certificate of a device that is
// not revoked yet, like RevokeCertificate, and returns how many it revoked.
func (s *Service) RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error) {
	n, err := s.store.RevokeDeviceCertificates(ctx, deviceID, reason, actor)
	if err != nil || n == 0 {
		return n, err
	}
	s.applyNow(ctx)
	return n, nil
}

// applyNow brings a revocation just committed into this node's set and
// renews the CRLs it changes, so that when a revoke call returns, this node
// refuses the certificate and, if it is the CRL publisher, serves a CRL
// that lists it (other nodes serve it once the publisher stored it,
// within the revocation refresh). The revocation is
// already durable, so failures here are only logged: the refresh loop and
// the publisher retry them.
func (s *Service) applyNow(ctx context.Context) {
	changed, err := s.refresh(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "revocation: refresh after revoking failed; the next periodic refresh applies it", "err", err)
	}
	s.markDirty(changed...)
	// The refresh loop may have seen the revocation first; either way it
	// is in the dirty set now, or being published under publishMu. With
	// several nodes, only the CRL publisher publishes; it hears of the
	// revocation through its own refresh.
	if s.publishes() {
		s.publishDirty(ctx)
	}
}
