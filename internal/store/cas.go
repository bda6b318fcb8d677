package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/notify"
)

// CA statuses. Only an active CA signs; active and retiring CAs are trusted,
// a retiring one until its RetireAt.
const (
	CAActive   = "active"
	CARetiring = "retiring"
	CARetired  = "retired"
)

// Fleet audit log events of the CA registry.
const (
	EventCACreated = "ca.created"
	EventCARotated = "ca.rotated"
)

// CA is a certificate authority Muster signs with or trusts. The
// certificate is public and shared by every node through the database; the
// private key is not in the database but in a key store, under KeyLabel.
type CA struct {
	ID      string `json:"id"`
	Purpose string `json:"purpose"` // root, operational, server, manufacturing, external or regional
	// Factory is set for manufacturing and external CAs; for a regional
	// CA it holds the region's name.
	Factory string `json:"factory,omitempty"`
	// KeyLabel names the key in the key store; empty for external CAs,
	// whose key stays with their maker.
	KeyLabel string `json:"keyLabel,omitempty"`
	CertPEM  string `json:"certPem"`
	// SubjectKeyID is the hex subject key identifier of the certificate.
	SubjectKeyID string     `json:"subjectKeyId"`
	Status       string     `json:"status"`
	NotAfter     time.Time  `json:"notAfter"`
	RetireAt     *time.Time `json:"retireAt,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
}

// CAFilter selects CAs in ListCAs; empty fields match anything.
type CAFilter struct {
	Purpose string
	Factory string
	Status  string
}

// caAudit is what the fleet audit log records about a CA.
type caAudit struct {
	ID           string     `json:"id"`
	Purpose      string     `json:"purpose"`
	Factory      string     `json:"factory,omitempty"`
	SubjectKeyID string     `json:"subjectKeyId"`
	Replaces     string     `json:"replaces,omitempty"`
	RetireAt     *time.Time `json:"retireAt,omitempty"`
}

const caCols = "id, purpose, factory, key_label, cert_pem, subject_key_id, status, not_after, retire_at, created_at"

// prepareCA fills in what the store owns on a new CA and checks the rest.
func (s *Store) prepareCA(ca *CA, now time.Time) error {
	switch {
	case ca.Purpose == "":
		return errors.New("store: a CA needs a purpose")
	case ca.CertPEM == "" || ca.SubjectKeyID == "" || ca.NotAfter.IsZero():
		return fmt.Errorf("store: %s CA needs its certificate, subject key id and expiry", ca.Purpose)
	}
	if ca.ID == "" {
		ca.ID = fleet.NewID("ca_", now)
	}
	if ca.Status == "" {
		ca.Status = CAActive
	}
	ca.NotAfter = ca.NotAfter.UTC().Truncate(time.Microsecond)
	ca.CreatedAt = now
	return nil
}

// InsertCA stores a new CA and records ca.created in the fleet audit log.
// It sets the id (when empty), the status (active when empty) and
// CreatedAt. A second active CA for the same purpose and factory is
// ErrDuplicate: when two nodes bootstrap at once, the loser gets it and
// loads the winner's CA with ListCAs.
func (s *Store) InsertCA(ctx context.Context, ca *CA, actor string) error {
	return s.insertAuditedCA(ctx, ca, *ca, actor, nil)
}

// insertAuditedCA prepares c, then in one transaction runs lock (when
// given), stores c and records ca.created. Only when all of it commits
// does *ca become c.
func (s *Store) insertAuditedCA(ctx context.Context, ca *CA, c CA, actor string, lock func(*txn) error) error {
	if err := s.prepareCA(&c, s.clock()); err != nil {
		return err
	}
	data, err := caCreatedData(&c)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(t *txn) error {
		if lock != nil {
			if err := lock(t); err != nil {
				return err
			}
		}
		return s.insertCACreated(ctx, t, &c, actor, data)
	})
	if err != nil {
		return err
	}
	*ca = c
	return nil
}

// caCreatedData is the ca.created event data of a prepared CA.
func caCreatedData(c *CA) (json.RawMessage, error) {
	return eventData(caAudit{ID: c.ID, Purpose: c.Purpose, Factory: c.Factory, SubjectKeyID: c.SubjectKeyID})
}

// insertCACreated writes a prepared CA row and its ca.created event (data
// from caCreatedData) inside t.
func (s *Store) insertCACreated(ctx context.Context, t *txn, c *CA, actor string, data json.RawMessage) error {
	if err := insertCA(ctx, t, c); err != nil {
		return err
	}
	return s.appendFleetEvent(ctx, t, EventCACreated, actor, data)
}

// insertCA writes one prepared CA row inside t.
func insertCA(ctx context.Context, t *txn, ca *CA) error {
	t.notice(notify.CAs, notify.All)
	_, err := t.exec(ctx, "INSERT INTO cas ("+caCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		ca.ID, ca.Purpose, ca.Factory, ca.KeyLabel, ca.CertPEM, ca.SubjectKeyID, ca.Status, ca.NotAfter, nullTime(ca.RetireAt), ca.CreatedAt)
	switch {
	case err == nil:
		return nil
	case t.d.isUniqueViolation(err):
		return fmt.Errorf("store: an active %s CA for %q exists already: %w", ca.Purpose, ca.Factory, ErrDuplicate)
	}
	return fmt.Errorf("store: insert %s CA: %w", ca.Purpose, err)
}

// ReplaceCA rotates a CA: the active CA oldID becomes retiring until
// retireAt (trusted, no longer signing) and next becomes the active CA of
// the same purpose and factory, in one transaction recorded as ca.rotated
// in the fleet audit log. next gets what InsertCA assigns. An unknown oldID
// is ErrNotFound; a CA that is no longer active is ErrVersionMismatch (it was
// rotated by someone else).
func (s *Store) ReplaceCA(ctx context.Context, oldID string, retireAt time.Time, next *CA, actor string) error {
	c := *next
	if err := s.prepareCA(&c, s.clock()); err != nil {
		return err
	}
	retireAt = retireAt.UTC().Truncate(time.Microsecond)
	data, err := eventData(caAudit{ID: c.ID, Purpose: c.Purpose, Factory: c.Factory, SubjectKeyID: c.SubjectKeyID,
		Replaces: oldID, RetireAt: &retireAt})
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(t *txn) error {
		var purpose, factory, status string
		err := t.queryRow(ctx, "SELECT purpose, factory, status FROM cas c WHERE id = ?"+t.d.forUpdate("c"), oldID).
			Scan(&purpose, &factory, &status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: CA %s: %w", oldID, ErrNotFound)
		case err != nil:
			return fmt.Errorf("store: read CA %s: %w", oldID, err)
		case status != CAActive:
			return fmt.Errorf("store: CA %s is %s, not active: %w", oldID, status, ErrVersionMismatch)
		case purpose != c.Purpose || factory != c.Factory:
			return fmt.Errorf("store: CA %s is the %s CA of %q; its successor must be too", oldID, purpose, factory)
		}
		if _, err := t.exec(ctx, "UPDATE cas SET status = ?, retire_at = ? WHERE id = ?", CARetiring, retireAt, oldID); err != nil {
			return fmt.Errorf("store: retire CA %s: %w", oldID, err)
		}
		if err := insertCA(ctx, t, &c); err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventCARotated, actor, data)
	})
	if err != nil {
		return err
	}
	*next = c
	return nil
}

// SetCAStatus changes a CA's status and retirement time, for example to
// retire a retiring CA once its overlap is over. An unknown id is
// ErrNotFound.
func (s *Store) SetCAStatus(ctx context.Context, id, status string, retireAt *time.Time) error {
	switch status {
	case CAActive, CARetiring, CARetired:
	default:
		return fmt.Errorf("store: unknown CA status %q", status)
	}
	return s.inTx(ctx, func(t *txn) error {
		t.notice(notify.CAs, notify.All)
		res, err := t.exec(ctx, "UPDATE cas SET status = ?, retire_at = ? WHERE id = ?", status, nullTime(retireAt), id)
		if err != nil {
			if t.d.isUniqueViolation(err) {
				return fmt.Errorf("store: CA %s: another CA of its purpose is active: %w", id, ErrDuplicate)
			}
			return fmt.Errorf("store: set status of CA %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: set status of CA %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: CA %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// ListCAs returns the CAs that match f, oldest first.
func (s *Store) ListCAs(ctx context.Context, f CAFilter) ([]CA, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"purpose", f.Purpose}, {"factory", f.Factory}, {"status", f.Status}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	q := "SELECT " + caCols + " FROM cas"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.query(ctx, q+" ORDER BY created_at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("store: list CAs: %w", err)
	}
	out, err := scanAll(rows, scanCA)
	if err != nil {
		return nil, fmt.Errorf("store: list CAs: %w", err)
	}
	return out, nil
}

// GetCA returns the CA with the given id, or ErrNotFound.
func (s *Store) GetCA(ctx context.Context, id string) (*CA, error) {
	ca, err := scanCA(s.queryRow(ctx, "SELECT "+caCols+" FROM cas WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: CA %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read CA %s: %w", id, err)
	}
	return ca, nil
}

func scanCA(r scanner) (*CA, error) {
	var c CA
	var retire sql.NullTime
	if err := r.Scan(&c.ID, &c.Purpose, &c.Factory, &c.KeyLabel, &c.CertPEM, &c.SubjectKeyID, &c.Status,
		&c.NotAfter, &retire, &c.CreatedAt); err != nil {
		return nil, err
	}
	c.NotAfter, c.CreatedAt = c.NotAfter.UTC(), c.CreatedAt.UTC()
	c.RetireAt = timePtr(retire)
	return &c, nil
}
