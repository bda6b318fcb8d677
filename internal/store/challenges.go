package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Challenge is a proof-of-possession nonce issued to a maker that registers
// its own CA for a factory. It is good once, until ExpiresAt.
type Challenge struct {
	Nonce     string     `json:"nonce"`
	Factory   string     `json:"factory"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
}

// ErrChallenge is wrapped by every *ChallengeError.
var ErrChallenge = errors.New("invalid possession challenge")

// ChallengeError says why a possession challenge cannot be used.
type ChallengeError struct {
	Nonce  string
	Reason string // for people: unknown, used, expired or for another factory
}

func (e *ChallengeError) Error() string {
	return fmt.Sprintf("possession challenge %s: %s", e.Nonce, e.Reason)
}

func (e *ChallengeError) Unwrap() error { return ErrChallenge }

// CreateChallenge stores a new challenge. It sets CreatedAt and CreatedBy;
// the caller chooses the nonce and its expiry. A taken nonce is
// ErrDuplicate.
func (s *Store) CreateChallenge(ctx context.Context, c *Challenge, actor string) error {
	if c.Nonce == "" || c.Factory == "" || c.ExpiresAt.IsZero() {
		return errors.New("store: a challenge needs a nonce, a factory and an expiry")
	}
	now := s.clock()
	expires := c.ExpiresAt.UTC().Truncate(time.Microsecond)
	err := s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "INSERT INTO ca_challenges (nonce, factory, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?)",
			c.Nonce, c.Factory, now, actor, expires)
		if err != nil && t.d.isUniqueViolation(err) {
			return fmt.Errorf("store: challenge nonce is taken: %w", ErrDuplicate)
		}
		if err != nil {
			return fmt.Errorf("store: create challenge: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.CreatedAt, c.CreatedBy, c.ExpiresAt, c.UsedAt = now, actor, expires, nil
	return nil
}

// consumeChallenge marks the nonce used inside t, or says why it cannot be.
// The conditional update is the whole check, so two registrations racing
// for one nonce cannot both succeed.
func consumeChallenge(ctx context.Context, t *txn, factory, nonce string, now time.Time) error {
	res, err := t.exec(ctx, "UPDATE ca_challenges SET used_at = ? WHERE nonce = ? AND factory = ? AND used_at IS NULL AND expires_at > ?",
		now, nonce, factory, now)
	if err != nil {
		return fmt.Errorf("store: use challenge: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: use challenge: %w", err)
	} else if n == 1 {
		return nil
	}
	var owner string
	var expires time.Time
	var used sql.NullTime
	err = t.queryRow(ctx, "SELECT factory, expires_at, used_at FROM ca_challenges WHERE nonce = ?", nonce).Scan(&owner, &expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return &ChallengeError{Nonce: nonce, Reason: "unknown nonce; request one with muster factories challenge"}
	case err != nil:
		return fmt.Errorf("store: read challenge: %w", err)
	case owner != factory:
		return &ChallengeError{Nonce: nonce, Reason: fmt.Sprintf("was issued for factory %q, not %q", owner, factory)}
	case used.Valid:
		return &ChallengeError{Nonce: nonce, Reason: "was used already; each nonce is good once: request a new one"}
	}
	return &ChallengeError{Nonce: nonce, Reason: fmt.Sprintf("expired at %s; request a new one", expires.UTC().Format(time.RFC3339))}
}
