package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// EventClaimCreated records an installer's claim in the fleet audit log.
const EventClaimCreated = "claim.created"

// Claim lets one device without a birth certificate provision once, before
// ExpiresAt, as the device Factory/Model/Serial, under Template. Only the
// SHA-256 of its secret is stored.
type Claim struct {
	ID        string     `json:"id"`
	Hash      string     `json:"-"`
	Factory   string     `json:"factory"`
	Model     string     `json:"model"`
	Serial    string     `json:"serial"`
	Template  string     `json:"template,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
	// DeviceID is the device that redeemed the claim.
	DeviceID string `json:"deviceId,omitempty"`
}

// claimAudit is what the fleet audit log records about a claim (never its
// secret or hash).
type claimAudit struct {
	ID        string    `json:"id"`
	Factory   string    `json:"factory"`
	Model     string    `json:"model"`
	Serial    string    `json:"serial"`
	Template  string    `json:"template,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

const claimCols = "id, secret_hash, factory, model, serial, template, created_at, created_by, expires_at, used_at, csr_sha256, device_id"

// CreateClaim stores a new claim and records it in the fleet audit log. It
// sets ID, CreatedAt and CreatedBy.
func (s *Store) CreateClaim(ctx context.Context, c *Claim, actor string) error {
	now := s.clock()
	cc := *c
	cc.ID, cc.CreatedAt, cc.CreatedBy = fleet.NewID("clm_", now), now, actor
	cc.ExpiresAt = cc.ExpiresAt.UTC().Truncate(time.Microsecond)
	data, err := eventData(claimAudit{ID: cc.ID, Factory: cc.Factory, Model: cc.Model, Serial: cc.Serial, Template: cc.Template, ExpiresAt: cc.ExpiresAt})
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO claims ("+claimCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			cc.ID, cc.Hash, cc.Factory, cc.Model, cc.Serial, cc.Template, cc.CreatedAt, cc.CreatedBy, cc.ExpiresAt, nil, "", ""); err != nil {
			return fmt.Errorf("store: write claim: %w", err)
		}
		return s.appendFleetEvent(ctx, t, EventClaimCreated, actor, data)
	})
	if err != nil {
		return err
	}
	*c = cc
	return nil
}

// RedeemClaim uses the claim whose secret hashes to hash for the request
// whose CSR hashes to csrSHA256, at now, and returns it. The first request
// uses the claim up; a retry of that same request (same CSR) may redeem it
// again until it expires, so a lost answer or a pending approval can be
// retried. A claim that is unknown, expired or used by another request is
// ErrNotFound, all alike, so a guesser learns nothing.
func (s *Store) RedeemClaim(ctx context.Context, hash, csrSHA256 string, now time.Time) (*Claim, error) {
	var out *Claim
	err := s.inTx(ctx, func(t *txn) error {
		var c Claim
		var used sql.NullTime
		var usedBy string
		err := t.queryRow(ctx, "SELECT "+claimCols+" FROM claims c WHERE secret_hash = ?"+t.d.forUpdate("c"), hash).
			Scan(&c.ID, &c.Hash, &c.Factory, &c.Model, &c.Serial, &c.Template, &c.CreatedAt, &c.CreatedBy, &c.ExpiresAt, &used, &usedBy, &c.DeviceID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: claim: %w", ErrNotFound)
		case err != nil:
			return fmt.Errorf("store: read claim: %w", err)
		case !now.Before(c.ExpiresAt), used.Valid && usedBy != csrSHA256:
			return fmt.Errorf("store: claim: %w", ErrNotFound)
		case used.Valid:
			c.UsedAt = timePtr(used)
			out = &c
			return nil
		}
		at := now.UTC().Truncate(time.Microsecond)
		if _, err := t.exec(ctx, "UPDATE claims SET used_at = ?, csr_sha256 = ? WHERE id = ?", at, csrSHA256, c.ID); err != nil {
			return fmt.Errorf("store: redeem claim %s: %w", c.ID, err)
		}
		c.UsedAt = &at
		out = &c
		return nil
	})
	return out, err
}

// SetClaimDevice records which device redeemed a claim.
func (s *Store) SetClaimDevice(ctx context.Context, id, deviceID string) error {
	return s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "UPDATE claims SET device_id = ? WHERE id = ?", deviceID, id)
		if err != nil {
			return fmt.Errorf("store: record device of claim %s: %w", id, err)
		}
		return nil
	})
}
