package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lease errors, compared with errors.Is.
var (
	// ErrLeaseHeld means another holder has the lease and it has not expired.
	ErrLeaseHeld = errors.New("lease is held by another node")
	// ErrLeaseLost means the caller's lease expired or changed hands: the
	// caller must stop the work it guards.
	ErrLeaseLost = errors.New("lease was lost to another node or expired")
)

// Lease is one holding of a named lease. Token is its fencing number:
// every change of hands increases it, so a write guarded by CheckLease
// (inside the writer's transaction) fails once the lease is someone else's.
type Lease struct {
	Name       string    `json:"name"`
	Holder     string    `json:"holder"`
	Token      int64     `json:"token"`
	AcquiredAt time.Time `json:"acquiredAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

const leaseCols = "name, holder, token, acquired_at, expires_at"

// AcquireLease takes lease name for holder until ttl from now: when nobody
// holds it, when its holder let it expire, or when holder itself holds it
// (a restarted node taking back its own work; node ids are unique among
// live nodes). Each acquisition gets a token greater than every earlier
// one. A lease another holder keeps alive is ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		return nil, errors.New("store: a lease needs a positive time to live")
	}
	now := s.clock()
	l := &Lease{Name: name, Holder: holder, AcquiredAt: now, ExpiresAt: now.Add(ttl)}
	err := s.inTx(ctx, func(t *txn) error {
		cur, err := scanLease(t.queryRow(ctx, "SELECT "+leaseCols+" FROM leases l WHERE name = ?"+t.d.forUpdate("l"), name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			l.Token = 1
			res, err := t.exec(ctx, "INSERT INTO leases ("+leaseCols+") VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
				name, holder, l.Token, l.AcquiredAt, l.ExpiresAt)
			if err != nil {
				return fmt.Errorf("store: acquire lease %s: %w", name, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store: acquire lease %s: %w", name, err)
			} else if n == 0 {
				// Another node created it between our read and our insert.
				return fmt.Errorf("store: lease %s: %w", name, ErrLeaseHeld)
			}
			return nil
		case err != nil:
			return fmt.Errorf("store: read lease %s: %w", name, err)
		case cur.Holder != holder && cur.ExpiresAt.After(now):
			return fmt.Errorf("store: lease %s (holder %s until %s): %w", name, cur.Holder, cur.ExpiresAt.Format(time.RFC3339), ErrLeaseHeld)
		}
		l.Token = cur.Token + 1
		_, err = t.exec(ctx, "UPDATE leases SET holder = ?, token = ?, acquired_at = ?, expires_at = ? WHERE name = ?",
			holder, l.Token, l.AcquiredAt, l.ExpiresAt, name)
		if err != nil {
			return fmt.Errorf("store: acquire lease %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// RenewLease extends l until ttl from now, if it is still l's holding
// (same holder and token); otherwise ErrLeaseLost. On success l.ExpiresAt
// is updated.
func (s *Store) RenewLease(ctx context.Context, l *Lease, ttl time.Duration) error {
	until := s.clock().Add(ttl)
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
			until, l.Name, l.Holder, l.Token)
		if err != nil {
			return fmt.Errorf("store: renew lease %s: %w", l.Name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: renew lease %s: %w", l.Name, err)
		} else if n == 0 {
			return fmt.Errorf("store: lease %s (token %d): %w", l.Name, l.Token, ErrLeaseLost)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.ExpiresAt = until
	return nil
}

// ReleaseLease gives l up at once, so another node need not wait for it to
// expire. Releasing a lease that changed hands does nothing.
func (s *Store) ReleaseLease(ctx context.Context, l *Lease) error {
	return s.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
			s.clock(), l.Name, l.Holder, l.Token)
		if err != nil {
			return fmt.Errorf("store: release lease %s: %w", l.Name, err)
		}
		return nil
	})
}

// GetLease returns the current holding of lease name, expired or not, or
// ErrNotFound when it was never taken.
func (s *Store) GetLease(ctx context.Context, name string) (*Lease, error) {
	l, err := scanLease(s.queryRow(ctx, "SELECT "+leaseCols+" FROM leases WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: lease %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read lease %s: %w", name, err)
	}
	return l, nil
}

// checkLease is the fence: inside t it locks the lease's row and fails with
// ErrLeaseLost unless l is still the holding and has not expired. A node
// taking the lease over waits for t's row lock, so no write of t can land
// after the lease changed hands.
func (s *Store) checkLease(ctx context.Context, t *txn, l *Lease) error {
	cur, err := scanLease(t.queryRow(ctx, "SELECT "+leaseCols+" FROM leases l WHERE name = ?"+t.d.forUpdate("l"), l.Name))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: lease %s: %w", l.Name, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("store: read lease %s: %w", l.Name, err)
	}
	if cur.Holder != l.Holder || cur.Token != l.Token || !cur.ExpiresAt.After(s.clock()) {
		return fmt.Errorf("store: lease %s (token %d, now %s token %d): %w", l.Name, l.Token, cur.Holder, cur.Token, ErrLeaseLost)
	}
	return nil
}

func scanLease(r scanner) (*Lease, error) {
	var l Lease
	if err := r.Scan(&l.Name, &l.Holder, &l.Token, &l.AcquiredAt, &l.ExpiresAt); err != nil {
		return nil, err
	}
	l.AcquiredAt, l.ExpiresAt = l.AcquiredAt.UTC(), l.ExpiresAt.UTC()
	return &l, nil
}
