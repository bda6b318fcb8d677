package revocation

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"
)

// certKey names a certificate as the certificates table does: its CA's id
// and its serial in lowercase hex.
type certKey struct{ caID, serial string }

// revokedSet is a node's copy of every revocation, with the issuers that
// map a presented chain onto CA ids. Handshakes read it; refreshes write it.
type revokedSet struct {
	mu      sync.RWMutex
	serials map[certKey]struct{}
	// head is the feed position the set is complete up to.
	head int64
	// refreshedAt is when the set was last brought up to date; zero until
	// the first refresh.
	refreshedAt time.Time
	issuers     *issuerIndex
	// failing is whether the last refresh failed, to log transitions only.
	failing atomic.Bool
}

func (rs *revokedSet) init() { rs.serials = map[certKey]struct{}{} }

// refresh reads the issuers and the revocation feed past the set's head and
// applies both. It returns the ids of the CAs that have new revocations,
// whose CRLs are now out of date. The first refresh reads the whole feed,
// so every CA with revocations is returned then, and a CRL that missed a
// revocation (a node stopped between revoking and publishing) is repaired.
func (s *Service) refresh(ctx context.Context) ([]string, error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	issuers, err := s.issuers.Issuers(ctx)
	if err != nil {
		return nil, fmt.Errorf("revocation: list CAs: %w", err)
	}
	idx := newIssuerIndex(issuers)
	s.set.mu.RLock()
	since := s.set.head
	s.set.mu.RUnlock()
	refs, head, err := s.store.RevokedSince(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("revocation: read revocation feed: %w", err)
	}
	var changed []string
	seen := map[string]bool{}
	s.set.mu.Lock()
	defer s.set.mu.Unlock()
	for _, r := range refs {
		s.set.serials[certKey{r.CAID, r.Serial}] = struct{}{}
		if !seen[r.CAID] {
			seen[r.CAID] = true
			changed = append(changed, r.CAID)
		}
	}
	s.set.head = max(s.set.head, head)
	s.set.issuers = idx
	s.set.refreshedAt = s.now()
	return changed, nil
}

// IsRevoked implements pki.RevocationChecker for the device listeners: it
// reports whether the certificate with serial, issued by issuer, is
// revoked, from memory. It fails closed with ErrUnavailable while the set
// has never loaded or is older than Config.MaxStaleness. A certificate of a
// CA Muster does not know has no revocation record and is reported as not
// revoked; whether such a chain is trusted at all is the verifier's call.
func (s *Service) IsRevoked(_ context.Context, issuer *x509.Certificate, serial *big.Int) (bool, error) {
	s.set.mu.RLock()
	defer s.set.mu.RUnlock()
	if err := s.readyLocked(); err != nil {
		return false, err
	}
	if serial == nil {
		return false, fmt.Errorf("revocation: no serial number given")
	}
	id, ok := s.set.issuers.idOf(issuer)
	if !ok {
		return false, nil
	}
	_, revoked := s.set.serials[certKey{id, serial.Text(16)}]
	return revoked, nil
}

// issuerIndex returns the issuers as of the last refresh.
func (s *Service) issuerIndex() *issuerIndex {
	s.set.mu.RLock()
	defer s.set.mu.RUnlock()
	return s.set.issuers
}

// Ready reports whether the node can answer IsRevoked: nil once the
// revocation set has loaded, as long as it stays fresh, else an error
// wrapping ErrUnavailable. Readiness probes and tests wait for it.
func (s *Service) Ready() error {
	s.set.mu.RLock()
	defer s.set.mu.RUnlock()
	return s.readyLocked()
}

// readyLocked is Ready with s.set.mu held.
func (s *Service) readyLocked() error {
	if s.set.refreshedAt.IsZero() {
		return fmt.Errorf("revocation: the revocation set has not loaded yet: %w", ErrUnavailable)
	}
	if age := s.now().Sub(s.set.refreshedAt); s.maxStale > 0 && age > s.maxStale {
		return fmt.Errorf("revocation: the revocation set was last refreshed %v ago: %w", age.Round(time.Millisecond), ErrUnavailable)
	}
	return nil
}
