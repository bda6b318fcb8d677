package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// ErrNoCRL means Muster publishes no CRL for the CA asked for: it does not
// know the CA, or holds no key for it (an external manufacturer CA).
var ErrNoCRL = errors.New("no CRL for this CA")

// maxPublishAttempts bounds how often publish re-signs after losing the race
// to store a CRL to another node whose CRL turned out to be out of date.
const maxPublishAttempts = 3

// crlCheckInterval is how often the publisher looks for CRLs due for
// renewal; renewing one is cheap, and only due ones are renewed.
const crlCheckInterval = time.Minute

// CRL returns the current CRL of the CA with the given id, signing one first
// if there is none yet or the stored one has passed its nextUpdate (the
// publisher is not running). ErrNoCRL means Muster publishes none for it.
func (s *Service) CRL(ctx context.Context, caID string) (*store.CRL, error) {
	crl, err := s.store.LatestCRL(ctx, caID)
	switch {
	case err == nil && s.now().Before(crl.NextUpdate):
		return crl, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	return s.publishLocked(ctx, caID, true)
}

// publishLocked signs and stores a new CRL for caID unless the stored one is
// still good: not due for renewal and, when changed is set, listing exactly
// the CA's revocations. Comparing with what is stored, rather than trusting
// this node's view, makes it correct on every node sharing the database and
// makes the publications of several nodes converge. s.publishMu must be held.
func (s *Service) publishLocked(ctx context.Context, caID string, changed bool) (*store.CRL, error) {
	// The index is at most one refresh old. Looking up unknown ids again
	// here would let anyone make the node query the database at will.
	idx := s.issuerIndex()
	if idx == nil {
		return nil, fmt.Errorf("revocation: the CA list has not loaded yet: %w", ErrUnavailable)
	}
	iss := idx.byID[caID]
	if iss.CA == nil {
		return nil, fmt.Errorf("revocation: CA %q: %w", caID, ErrNoCRL)
	}
	for attempt := 1; ; attempt++ {
		latest, err := s.store.LatestCRL(ctx, caID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		now := s.now()
		due := latest == nil || !now.Before(latest.ThisUpdate.Add(s.crlEvery)) || !now.Before(latest.NextUpdate)
		if !due && !changed {
			return latest, nil
		}
		entries, err := s.store.RevokedByCA(ctx, caID)
		if err != nil {
			return nil, err
		}
		if !due && listsExactly(latest.DER, entries) {
			return latest, nil
		}
		crl, err := s.sign(iss.CA, caID, latest, entries, now)
		if err != nil {
			return nil, err
		}
		saved, err := s.store.SaveCRL(ctx, *crl)
		if err != nil {
			return nil, err
		}
		if saved {
			s.log.InfoContext(ctx, "revocation: published CRL", "ca", caID, "number", crl.Number, "entries", len(entries))
			return crl, nil
		}
		// Another node stored a CRL with this number first. Its CRL may
		// predate the revocation that made this one: look again.
		if attempt == maxPublishAttempts {
			return nil, fmt.Errorf("revocation: CRL of CA %s: other nodes kept publishing first; retry later", caID)
		}
		changed = true
	}
}

// sign creates the CRL that follows latest (nil for the first).
func (s *Service) sign(ca *pki.CA, caID string, latest *store.CRL, entries []store.RevokedEntry, now time.Time) (*store.CRL, error) {
	list := make([]pki.RevokedCert, 0, len(entries))
	for _, e := range entries {
		serial, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("revocation: CA %s has a revoked certificate with serial %q, which is not hex", caID, e.Serial)
		}
		list = append(list, pki.RevokedCert{Serial: serial, RevokedAt: e.RevokedAt, Reason: e.Reason})
	}
	number := int64(1)
	if latest != nil {
		number = latest.Number + 1
	}
	// DER times have whole seconds; storing the same keeps the two equal.
	this := now.UTC().Truncate(time.Second)
	next := this.Add(s.crlValidity)
	der, err := ca.CreateCRL(list, number, this, next)
	if err != nil {
		return nil, fmt.Errorf("revocation: sign CRL %d of CA %s: %w", number, caID, err)
	}
	return &store.CRL{CAID: caID, Number: number, ThisUpdate: this, NextUpdate: next, DER: der}, nil
}

// listsExactly reports whether the DER CRL lists exactly the serials of
// entries. A CRL that cannot be parsed lists nothing useful and is renewed.
func listsExactly(der []byte, entries []store.RevokedEntry) bool {
	crl, err := x509.ParseRevocationList(der)
	if err != nil || len(crl.RevokedCertificateEntries) != len(entries) {
		return false
	}
	have := make([]string, len(crl.RevokedCertificateEntries))
	for i, e := range crl.RevokedCertificateEntries {
		have[i] = e.SerialNumber.Text(16)
	}
	want := make([]string, len(entries))
	for i, e := range entries {
		want[i] = e.Serial
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// markDirty queues CRLs whose CA has new revocations and wakes the
// publisher.
func (s *Service) markDirty(caIDs ...string) {
	if len(caIDs) == 0 {
		return
	}
	s.dirtyMu.Lock()
	for _, id := range caIDs {
		s.dirty[id] = true
	}
	s.dirtyMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// publishDirty renews the queued CRLs. A CA whose CRL fails stays queued
// for the next round rather than being retried in a tight loop.
func (s *Service) publishDirty(ctx context.Context) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.dirtyMu.Lock()
	ids := make([]string, 0, len(s.dirty))
	for id := range s.dirty {
		ids = append(ids, id)
	}
	clear(s.dirty)
	s.dirtyMu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		s.publishOne(ctx, id, true)
	}
}

// publishDue renews every CRL that is due, and signs the first CRL of CAs
// that have none.
func (s *Service) publishDue(ctx context.Context) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	idx := s.issuerIndex()
	if idx == nil {
		return
	}
	for id, iss := range idx.byID {
		if iss.CA != nil {
			s.publishOne(ctx, id, false)
		}
	}
}

// publishOne publishes one CRL, requeueing it on failure. s.publishMu must
// be held.
func (s *Service) publishOne(ctx context.Context, caID string, changed bool) {
	_, err := s.publishLocked(ctx, caID, changed)
	switch {
	case err == nil, errors.Is(err, ErrNoCRL):
	case ctx.Err() != nil:
	default:
		s.log.WarnContext(ctx, "revocation: publishing a CRL failed; retrying later", "ca", caID, "err", err)
		s.dirtyMu.Lock()
		s.dirty[caID] = true
		s.dirtyMu.Unlock()
	}
}

// publishLoop renews CRLs when revocations change them and when they are
// due, until ctx ends. With Config.Leases it does so only while this node
// holds the CRL lease, and keeps trying to take the lease otherwise.
func (s *Service) publishLoop(ctx context.Context) {
	defer s.releasePublisher(ctx)
	tick := time.NewTicker(min(s.crlEvery, crlCheckInterval))
	defer tick.Stop()
	var claim <-chan time.Time
	if s.leases != nil {
		t := time.NewTicker(s.claimInterval())
		defer t.Stop()
		claim = t.C
	}
	due, checkAll := true, false
	for {
		publishes, took := s.claimPublisher(ctx)
		checkAll = checkAll || took
		if publishes {
			if ids := s.crlCAs(); checkAll && ids != nil {
				s.markDirty(ids...)
				checkAll = false
			}
			s.publishDirty(ctx)
			if due {
				s.publishDue(ctx)
			}
		}
		due = false
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
			due = true
		case <-claim:
		}
	}
}
