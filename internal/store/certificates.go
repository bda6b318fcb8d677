package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Certificate kinds.
const (
	CertBirth       = "birth"
	CertOperational = "operational"
	CertServer      = "server"
)

// Certificate is a certificate Muster issued, or an external birth
// certificate it registered, and whether it is revoked. (CAID, Serial)
// identifies it, as CRLs and OCSP do.
type Certificate struct {
	CAID string `json:"caId"`
	// Serial is the serial number in lowercase hex (SerialHex).
	Serial   string `json:"serial"`
	DeviceID string `json:"deviceId"`
	Kind     string `json:"kind"` // birth, operational or server
	// Fingerprint is the hex SHA-256 of the public key (pki.PublicKeyFingerprint).
	Fingerprint  string     `json:"fingerprint"`
	NotBefore    time.Time  `json:"notBefore"`
	NotAfter     time.Time  `json:"notAfter"`
	CertPEM      string     `json:"certPem"`
	CreatedAt    time.Time  `json:"createdAt"`
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokeReason *int       `json:"revokeReason,omitempty"` // RFC 5280 CRLReason
}

// SerialHex is how the store writes a certificate serial number: lowercase
// hex without leading zeros.
func SerialHex(n *big.Int) string { return n.Text(16) }

// ErrKeyReused is wrapped by every *KeyReuseError.
var ErrKeyReused = errors.New("public key is certified for another device")

// KeyReuseError says that a certificate's public key already belongs to
// another device: a cloned device or a broken random number generator.
type KeyReuseError struct {
	// Index is the position of the offending certificate in the call.
	Index       int
	Fingerprint string
	// Owner is the device the key belongs to.
	Owner string
}

func (e *KeyReuseError) Error() string {
	return fmt.Sprintf("public key %s is already certified for device %s", e.Fingerprint, e.Owner)
}

func (e *KeyReuseError) Unwrap() error { return ErrKeyReused }

// certificateCols are the certificates columns scanCertificate reads.
const certificateCols = "ca_id, serial, device_id, kind, fingerprint, not_before, not_after, cert_pem, created_at, revoked_at, revoke_reason"

// certificateInsertCols are the columns a new certificate row is written
// with; revocation columns start out NULL.
var certificateInsertCols = []string{"ca_id", "serial", "device_id", "kind", "fingerprint", "not_before", "not_after", "cert_pem", "created_at"}

// scanCertificate reads a row of certificateCols.
func scanCertificate(r scanner) (*Certificate, error) {
	var c Certificate
	var revoked sql.NullTime
	var reason sql.NullInt64
	if err := r.Scan(&c.CAID, &c.Serial, &c.DeviceID, &c.Kind, &c.Fingerprint, &c.NotBefore, &c.NotAfter,
		&c.CertPEM, &c.CreatedAt, &revoked, &reason); err != nil {
		return nil, err
	}
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	c.RevokedAt = timePtr(revoked)
	if reason.Valid {
		n := int(reason.Int64)
		c.RevokeReason = &n
	}
	return &c, nil
}

// scanCertificates decodes and closes rows of certificateCols.
func scanCertificates(rows *sql.Rows) ([]Certificate, error) {
	return scanAll(rows, scanCertificate)
}

// CertificatesByDevice returns every certificate of a device, oldest first.
func (s *Store) CertificatesByDevice(ctx context.Context, deviceID string) ([]Certificate, error) {
	rows, err := s.query(ctx, "SELECT "+certificateCols+" FROM certificates WHERE device_id = ? ORDER BY created_at, serial", deviceID)
	if err != nil {
		return nil, fmt.Errorf("store: certificates of device %s: %w", deviceID, err)
	}
	certs, err := scanCertificates(rows)
	if err != nil {
		return nil, fmt.Errorf("store: certificates of device %s: %w", deviceID, err)
	}
	return certs, nil
}

// CertificateByFingerprint returns the oldest certificate for the public
// key with the given fingerprint, or ErrNotFound: the way to learn which
// device a key belongs to.
func (s *Store) CertificateByFingerprint(ctx context.Context, fingerprint string) (*Certificate, error) {
	c, err := scanCertificate(s.queryRow(ctx, "SELECT "+certificateCols+
		" FROM certificates WHERE fingerprint = ? ORDER BY created_at, serial LIMIT 1", fingerprint))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: certificate for key %s: %w", fingerprint, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: certificate for key %s: %w", fingerprint, err)
	}
	return c, nil
}

// BirthCertificates returns the newest birth certificate of each of the
// given devices that has one, by device id.
func (s *Store) BirthCertificates(ctx context.Context, deviceIDs []string) (map[string]Certificate, error) {
	out := make(map[string]Certificate, len(deviceIDs))
	err := queryIn(ctx, s.query, "SELECT "+certificateCols+" FROM certificates WHERE kind = '"+CertBirth+"' AND device_id", deviceIDs,
		" ORDER BY created_at, serial", func(rows *sql.Rows) error {
			certs, err := scanCertificates(rows)
			for _, c := range certs {
				out[c.DeviceID] = c // newest last
			}
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("store: birth certificates: %w", err)
	}
	return out, nil
}

// KeyOwners returns the device each of the given public key fingerprints
// is certified for, for the keys that are.
func (s *Store) KeyOwners(ctx context.Context, fingerprints []string) (map[string]string, error) {
	return keyOwners(ctx, s.query, fingerprints)
}

func keyOwners(ctx context.Context, query queryFunc, fingerprints []string) (map[string]string, error) {
	out := make(map[string]string)
	err := queryIn(ctx, query, "SELECT fingerprint, device_id FROM key_owners WHERE fingerprint", fingerprints, "",
		func(rows *sql.Rows) error {
			defer rows.Close()
			for rows.Next() {
				var fp, dev string
				if err := rows.Scan(&fp, &dev); err != nil {
					return err
				}
				out[fp] = dev
			}
			return rows.Err()
		})
	if err != nil {
		return nil, fmt.Errorf("store: look up key owners: %w", err)
	}
	return out, nil
}

// maxInList bounds the values of one IN list, well below every backend's
// parameter limit.
const maxInList = 500

// queryIn runs prefix + " IN (?, ...)" + suffix for vals, in slices of at
// most maxInList values, and hands each result to scan, which must close it.
func queryIn(ctx context.Context, query queryFunc, prefix string, vals []string, suffix string, scan func(*sql.Rows) error) error {
	for start := 0; start < len(vals); start += maxInList {
		part := vals[start:min(start+maxInList, len(vals))]
		args := make([]any, len(part))
		for i, v := range part {
			args[i] = v
		}
		q := prefix + " IN (" + strings.TrimSuffix(strings.Repeat("?,", len(part)), ",") + ")" + suffix
		rows, err := query(ctx, q, args...)
		if err != nil {
			return err
		}
		if err := scan(rows); err != nil {
			return err
		}
	}
	return nil
}

// insertCertificates writes new certificates inside t and claims their
// public keys for their devices. A key certified for another device (now,
// or by a concurrent transaction that commits first) fails the call with a
// *KeyReuseError naming the certificate's index; a concurrent claim may
// instead surface as a unique violation, which callers retry, and the retry
// then finds the owner. Every writer of certificates goes through here, so
// one key never serves two devices.
func insertCertificates(ctx context.Context, t *txn, certs []Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	fps := make([]string, 0, len(certs))
	first := make(map[string]int, len(certs))
	for i, c := range certs {
		if j, dup := first[c.Fingerprint]; dup {
			if certs[j].DeviceID != c.DeviceID {
				return &KeyReuseError{Index: i, Fingerprint: c.Fingerprint, Owner: certs[j].DeviceID}
			}
			continue
		}
		first[c.Fingerprint] = i
		fps = append(fps, c.Fingerprint)
	}
	owners, err := keyOwners(ctx, t.query, fps)
	if err != nil {
		return err
	}
	// Claims go in key order, so concurrent writers lock keys in the same
	// order and cannot deadlock on PostgreSQL.
	slices.Sort(fps)
	claims := newBulkRows("key_owners", []string{"fingerprint", "device_id"}, len(fps))
	for _, fp := range fps {
		i := first[fp]
		switch owner, ok := owners[fp]; {
		case !ok:
			claims.add(fp, certs[i].DeviceID)
		case owner != certs[i].DeviceID:
			return &KeyReuseError{Index: i, Fingerprint: fp, Owner: owner}
		}
	}
	rows := newBulkRows("certificates", certificateInsertCols, len(certs))
	for _, c := range certs {
		rows.add(c.CAID, c.Serial, c.DeviceID, c.Kind, c.Fingerprint, c.NotBefore.UTC(), c.NotAfter.UTC(), c.CertPEM, c.CreatedAt)
	}
	for _, b := range []*bulkRows{claims, rows} {
		if b.len() == 0 {
			continue
		}
		if err := t.d.bulkInsert(ctx, t, b); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}
