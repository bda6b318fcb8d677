package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PutCAKey keeps the encrypted PEM of a CA key under its key store label,
// so that every node sharing the database can load it. A label stored
// already keeps its first key: labels embed the CA id and a CA key never
// changes, so a second put is a node re-uploading a key it loaded.
func (s *Store) PutCAKey(ctx context.Context, label string, encryptedPEM []byte) error {
	if label == "" || len(encryptedPEM) == 0 {
		return errors.New("store: a CA key needs a label and its encrypted PEM")
	}
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO ca_keys (label, key_pem, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
			label, string(encryptedPEM), s.clock()); err != nil {
			return fmt.Errorf("store: keep CA key %s: %w", label, err)
		}
		return nil
	})
}

// CAKey returns the encrypted PEM stored under label, or ErrNotFound.
func (s *Store) CAKey(ctx context.Context, label string) ([]byte, error) {
	var pem string
	err := s.queryRow(ctx, "SELECT key_pem FROM ca_keys WHERE label = ?", label).Scan(&pem)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: no CA key %s in the database: %w", label, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read CA key %s: %w", label, err)
	}
	return []byte(pem), nil
}
