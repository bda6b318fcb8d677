package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// CRL is a signed certificate revocation list of one CA.
type CRL struct {
	CAID string
	// Number is the CRL number inside DER. It grows with every CRL the CA
	// publishes, across restarts and nodes.
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// SaveCRL stores crl as its CA's latest CRL if its number is higher than
// the stored one's, and reports whether it did. Nodes that signed CRLs at
// the same time race here; the loser learns it lost and keeps the winner's,
// so the published number never goes backwards.
func (s *Store) SaveCRL(ctx context.Context, crl CRL) (bool, error) {
	if crl.CAID == "" || len(crl.DER) == 0 || crl.Number < 0 {
		return false, errors.New("store: a CRL needs a CA id, a non-negative number and its DER")
	}
	var saved bool
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `INSERT INTO crls (ca_id, number, this_update, next_update, der) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ca_id) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
				next_update = excluded.next_update, der = excluded.der
			WHERE crls.number < excluded.number`,
			crl.CAID, crl.Number, crl.ThisUpdate.UTC(), crl.NextUpdate.UTC(), base64.StdEncoding.EncodeToString(crl.DER))
		if err != nil {
			return fmt.Errorf("store: save CRL %d of CA %s: %w", crl.Number, crl.CAID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: save CRL %d of CA %s: %w", crl.Number, crl.CAID, err)
		}
		saved = n > 0
		return nil
	})
	return saved, err
}

// LatestCRL returns the CA's latest CRL, or ErrNotFound before its first.
func (s *Store) LatestCRL(ctx context.Context, caID string) (*CRL, error) {
	crl := CRL{CAID: caID}
	var der string
	err := s.queryRow(ctx, "SELECT number, this_update, next_update, der FROM crls WHERE ca_id = ?", caID).
		Scan(&crl.Number, &crl.ThisUpdate, &crl.NextUpdate, &der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: CRL of CA %s: %w", caID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read CRL of CA %s: %w", caID, err)
	}
	if crl.DER, err = base64.StdEncoding.DecodeString(der); err != nil {
		return nil, fmt.Errorf("store: stored CRL of CA %s is not base64: %w", caID, err)
	}
	crl.ThisUpdate, crl.NextUpdate = crl.ThisUpdate.UTC(), crl.NextUpdate.UTC()
	return &crl, nil
}
