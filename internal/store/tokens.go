package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// tokenAudit is what the fleet audit log records about a token: never its hash.
type tokenAudit struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Role      string     `json:"role,omitempty"`
	Factory   string     `json:"factory,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

const tokenCols = "id, name, role, factory, hash, created_at, created_by, expires_at, revoked_at"

// CreateToken stores a new API token and records token.created in the fleet
// audit log in the same transaction. It sets the id (when empty), CreatedAt
// and CreatedBy. A taken id or hash is ErrDuplicate.
func (s *Store) CreateToken(ctx context.Context, tok *Token, actor string) error {
	switch {
	case tok == nil:
		return errors.New("store: nil token")
	case tok.Name == "":
		return &fleet.FieldError{Field: "name", Message: "is required"}
	case tok.Role == "":
		return &fleet.FieldError{Field: "role", Message: "is required"}
	case tok.Hash == "":
		return &fleet.FieldError{Field: "hash", Message: "is required"}
	}
	t := *tok
	now := s.clock()
	if t.ID == "" {
		t.ID = fleet.NewID("tok_", now)
	}
	t.CreatedAt, t.CreatedBy = now, actor
	if t.ExpiresAt != nil {
		exp := t.ExpiresAt.UTC().Truncate(time.Microsecond)
		t.ExpiresAt = &exp
	}
	t.RevokedAt = nil
	data, err := eventData(tokenAudit{ID: t.ID, Name: t.Name, Role: t.Role, Factory: t.Factory, ExpiresAt: t.ExpiresAt})
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx *txn) error {
		res, err := tx.exec(ctx, "INSERT INTO tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
			t.ID, t.Name, t.Role, t.Factory, t.Hash, t.CreatedAt, t.CreatedBy, nullTime(t.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: create token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: create token: %w", err)
		} else if n == 0 {
			return fmt.Errorf("store: token id %q or its secret is already in use: %w", t.ID, ErrDuplicate)
		}
		return s.appendFleetEvent(ctx, tx, fleet.EventTokenCreated, actor, data)
	})
	if err != nil {
		return err
	}
	*tok = t
	return nil
}

// TokenByHash returns the token whose secret hashes to hash, revoked and
// expired ones included (the caller decides), or ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*Token, error) {
	return s.oneToken(ctx, "token", "SELECT "+tokenCols+" FROM tokens WHERE hash = ?", hash)
}

// GetToken returns the token with the given id, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (*Token, error) {
	return s.oneToken(ctx, "token "+id, "SELECT "+tokenCols+" FROM tokens WHERE id = ?", id)
}

func (s *Store) oneToken(ctx context.Context, what, query string, args ...any) (*Token, error) {
	t, err := scanToken(s.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", what, err)
	}
	return t, nil
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.query(ctx, "SELECT "+tokenCols+" FROM tokens ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	out, err := scanAll(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks a token revoked and records token.revoked in the fleet
// audit log in the same transaction. Revoking a revoked token changes
// nothing; an unknown id is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id, actor string) error {
	data, err := eventData(tokenAudit{ID: id})
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(t *txn) error {
		var revoked sql.NullTime
		err := t.queryRow(ctx, "SELECT revoked_at FROM tokens t WHERE id = ?"+t.d.forUpdate("t"), id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: token %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read token %s: %w", id, err)
		}
		if revoked.Valid {
			return nil
		}
		if _, err := t.exec(ctx, "UPDATE tokens SET revoked_at = ? WHERE id = ?", s.clock(), id); err != nil {
			return fmt.Errorf("store: revoke token %s: %w", id, err)
		}
		return s.appendFleetEvent(ctx, t, fleet.EventTokenRevoked, actor, data)
	})
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

func scanToken(r scanner) (*Token, error) {
	var t Token
	var expires, revoked sql.NullTime
	if err := r.Scan(&t.ID, &t.Name, &t.Role, &t.Factory, &t.Hash, &t.CreatedAt, &t.CreatedBy, &expires, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt = timePtr(expires)
	t.RevokedAt = timePtr(revoked)
	return &t, nil
}

func timePtr(nt sql.NullTime) *time.Time {
	if !nt.Valid {
		return nil
	}
	t := nt.Time.UTC()
	return &t
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}
