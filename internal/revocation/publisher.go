package revocation

import (
	"context"
	"errors"
	"time"

	"github.com/muster-iot/muster/internal/lease"
)

// CRLLease is the lease the node that publishes CRLs holds (see
// Config.Leases).
const CRLLease = "crl"

// Leases claims the CRL publisher's lease among nodes sharing a database;
// *lease.Manager is one.
type Leases interface {
	TryAcquire(ctx context.Context, name string) (*lease.Held, error)
	TTL() time.Duration
}

var _ Leases = (*lease.Manager)(nil)

// CRL writes are not fenced with the lease token, unlike job chunks: a
// publisher that lost its lease while signing can at worst store a correct
// CRL, and SaveCRL stores only a higher CRL number than the stored one, so
// the new publisher's CRLs are never overwritten by an older view (and a
// CRL it finds out of date, it renews). The lease saves the work of every
// node signing the same CRLs; correctness never depended on it.

// claimInterval is how often a node that does not publish CRLs tries to
// take the lease over: a third of its time to live, so a dead publisher is
// replaced within about one lease period.
func (s *Service) claimInterval() time.Duration {
	return max(s.leases.TTL()/3, 10*time.Millisecond)
}

// claimPublisher reports whether this node publishes CRLs now: always
// without Config.Leases; with them, while it holds CRLLease, which it tries
// to take when it does not. took reports that it has just taken the lease:
// the previous publisher may have died before publishing what it had to,
// so the new one checks every CRL.
func (s *Service) claimPublisher(ctx context.Context) (publishes, took bool) {
	if s.leases == nil {
		return true, false
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if s.held != nil {
		if s.held.Context().Err() == nil {
			return true, false
		}
		// The holding ended: lost, or ctx is ending because the node stops.
		// Release it either way, since releasePublisher will no longer see
		// it; the release is fenced by the lease's token, so it cannot undo
		// another node's newer holding.
		s.releaseHeldLocked(ctx)
	}
	if ctx.Err() != nil {
		return false, false
	}
	h, err := s.leases.TryAcquire(ctx, CRLLease)
	switch {
	case err == nil:
		s.held = h
		s.log.InfoContext(ctx, "revocation: this node publishes the CRLs", "lease", CRLLease, "token", h.Lease().Token)
		return true, true
	case errors.Is(err, lease.ErrHeld), ctx.Err() != nil:
	default:
		s.log.WarnContext(ctx, "revocation: cannot claim the CRL lease; retrying", "lease", CRLLease, "err", err)
	}
	return false, false
}

// publishes reports, without claiming anything, whether this node is the
// one publishing CRLs.
func (s *Service) publishes() bool {
	if s.leases == nil {
		return true
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	return s.held != nil && s.held.Context().Err() == nil
}

// releasePublisher gives the CRL lease up when the node stops, so another
// node takes publication over at once instead of after the lease expires.
func (s *Service) releasePublisher(ctx context.Context) {
	if s.leases == nil {
		return
	}
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	s.releaseHeldLocked(ctx)
}

// releaseHeldLocked releases and forgets the CRL lease if this node holds
// it. s.claimMu must be held.
func (s *Service) releaseHeldLocked(ctx context.Context) {
	if s.held == nil {
		return
	}
	if err := s.held.Release(context.WithoutCancel(ctx)); err != nil {
		s.log.WarnContext(ctx, "revocation: releasing the CRL lease failed; another node takes it over when it expires", "err", err)
	}
	s.held = nil
}

// crlCAs lists the ids of the CAs Muster signs CRLs for, or nil before
// the CA list has loaded.
func (s *Service) crlCAs() []string {
	idx := s.issuerIndex()
	if idx == nil {
		return nil
	}
	ids := make([]string, 0, len(idx.byID))
	for id, iss := range idx.byID {
		if iss.CA != nil {
			ids = append(ids, id)
		}
	}
	return ids
}
