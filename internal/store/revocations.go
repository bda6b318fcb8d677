package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/notify"
)

// RevokedRef is one entry of the revocation feed: which certificate, and
// its position in the feed.
type RevokedRef struct {
	CAID   string
	Serial string
	Seq    int64
}

// RevokedEntry is one revoked certificate of a CA, as its CRL lists it.
type RevokedEntry struct {
	Serial    string
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code.
	Reason int
}

// revokedData is the data of a certificate.revoked event.
type revokedData struct {
	CAID   string `json:"caId"`
	Serial string `json:"serial"`
	Kind   string `json:"kind"`
	Reason int    `json:"reason"`
}

// NormalizeSerial returns a certificate serial in the form the certificates
// table keys it by: lowercase hex without leading zeros. It accepts any
// case, leading zeros and colon separators (as openssl prints serials), so
// a serial copied from any tool finds its certificate.
func NormalizeSerial(serial string) (string, error) {
	hex := strings.ReplaceAll(serial, ":", "")
	// RFC 5280 serials are at most 20 octets; the length check first keeps
	// a huge path segment from being parsed at all.
	var n *big.Int
	ok := len(hex) <= maxSerialHexLen && !strings.ContainsAny(hex, "+-xX_")
	if ok {
		n, ok = new(big.Int).SetString(hex, 16)
	}
	if !ok || n.Sign() <= 0 || n.BitLen() > 160 {
		return "", &fleet.FieldError{Field: "serial", Message: fmt.Sprintf("%.80q is not a certificate serial number in hex", serial)}
	}
	return SerialHex(n), nil
}

// maxSerialHexLen allows 20 octets in hex with generous zero padding.
const maxSerialHexLen = 64

// checkRevocationReason accepts the RFC 5280 CRLReason codes a full CRL may
// carry, except certificateHold (6): Muster's revocations are final.
func checkRevocationReason(reason int) error {
	if reason < 0 || reason > 10 || reason == 6 || reason == 7 || reason == 8 {
		return &fleet.FieldError{Field: "reason", Message: fmt.Sprintf("%d is not a revocation reason code Muster uses", reason)}
	}
	return nil
}

// toRevoke is a certificate a revocation transaction is about to mark.
type toRevoke struct {
	caID, serial, deviceID, kind string
}

// RevokeCertificate revokes the certificate caID issued with serial, for an
// RFC 5280 reason code. In one transaction it marks the certificate, gives
// it the next position in the revocation feed and records
// certificate.revoked in its device's history (in the fleet audit log for a
// certificate that belongs to no device). Revoking a revoked certificate
// changes nothing and succeeds; an unknown one is ErrNotFound.
func (s *Store) RevokeCertificate(ctx context.Context, caID, serial string, reason int, actor string) error {
	if err := checkRevocationReason(reason); err != nil {
		return err
	}
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(t *txn) error {
		var c toRevoke
		var revoked sql.NullTime
		err := t.queryRow(ctx, "SELECT ca_id, serial, device_id, kind, revoked_at FROM certificates c WHERE ca_id = ? AND serial = ?"+t.d.forUpdate("c"),
			caID, serial).Scan(&c.caID, &c.serial, &c.deviceID, &c.kind, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: certificate %s of CA %s: %w", serial, caID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read certificate %s of CA %s: %w", serial, caID, err)
		}
		if revoked.Valid {
			return nil
		}
		return s.revoke(ctx, t, []toRevoke{c}, reason, actor)
	})
}

// RevokeDeviceCertificates revokes every certificate of a device that is
// not revoked yet, as RevokeCertificate does for one, in one transaction,
// and returns how many it revoked (0 when none was left). An unknown device
// is ErrNotFound.
func (s *Store) RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error) {
	if err := checkRevocationReason(reason); err != nil {
		return 0, err
	}
	var n int
	err := s.inTx(ctx, func(t *txn) error {
		var err error
		n, err = s.revokeDeviceInTx(ctx, t, deviceID, reason, actor)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// revokeDeviceInTx is RevokeDeviceCertificates inside t, for writers that
// revoke together with other changes in one transaction.
func (s *Store) revokeDeviceInTx(ctx context.Context, t *txn, deviceID string, reason int, actor string) (int, error) {
	var one int
	// Locking the device first orders this against other writers of its
	// history before any certificate row is touched.
	err := t.queryRow(ctx, "SELECT 1 FROM devices d WHERE id = ?"+t.d.forUpdate("d"), deviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: device %s: %w", deviceID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("store: read device %s: %w", deviceID, err)
	}
	rows, err := t.query(ctx, "SELECT ca_id, serial, device_id, kind FROM certificates c WHERE device_id = ? AND revoked_at IS NULL ORDER BY created_at, ca_id, serial"+t.d.forUpdate("c"), deviceID)
	if err != nil {
		return 0, fmt.Errorf("store: list certificates of %s: %w", deviceID, err)
	}
	var certs []toRevoke
	for rows.Next() {
		var c toRevoke
		if err := rows.Scan(&c.caID, &c.serial, &c.deviceID, &c.kind); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: list certificates of %s: %w", deviceID, err)
		}
		certs = append(certs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: list certificates of %s: %w", deviceID, err)
	}
	return len(certs), s.revoke(ctx, t, certs, reason, actor)
}

// revoke marks certs revoked inside t and records them in their histories.
// The revocation_head row lock is held until t commits, so feed positions
// become visible in order: a reader that sees position n sees every
// position below it.
func (s *Store) revoke(ctx context.Context, t *txn, certs []toRevoke, reason int, actor string) error {
	if len(certs) == 0 {
		return nil
	}
	t.notice(notify.Revocations, notify.All)
	var last int64
	if err := t.queryRow(ctx, "UPDATE revocation_head SET seq = seq + ? WHERE id = 1 RETURNING seq", len(certs)).Scan(&last); err != nil {
		return fmt.Errorf("store: advance revocation feed: %w", err)
	}
	now := s.clock()
	byDevice := map[string][]Change{}
	var devices []string
	for i, c := range certs {
		seq := last - int64(len(certs)-1-i)
		if _, err := t.exec(ctx, "UPDATE certificates SET revoked_at = ?, revoke_reason = ?, revoke_seq = ? WHERE ca_id = ? AND serial = ?",
			now, reason, seq, c.caID, c.serial); err != nil {
			return fmt.Errorf("store: revoke certificate %s of CA %s: %w", c.serial, c.caID, err)
		}
		if _, seen := byDevice[c.deviceID]; !seen {
			devices = append(devices, c.deviceID)
		}
		byDevice[c.deviceID] = append(byDevice[c.deviceID], Change{
			Type: fleet.EventCertificateRevoked,
			Data: revokedData{CAID: c.caID, Serial: c.serial, Kind: c.kind, Reason: reason},
		})
	}
	for _, id := range devices {
		if err := s.recordRevocations(ctx, t, id, actor, byDevice[id]); err != nil {
			return err
		}
	}
	return nil
}

// recordRevocations appends revocation events to the device's history, or
// to the fleet audit log for certificates of no registered device (Muster's
// own server certificates), so every revocation is on some chain.
func (s *Store) recordRevocations(ctx context.Context, t *txn, deviceID, actor string, changes []Change) error {
	if deviceID != "" {
		err := s.appendDeviceEvents(ctx, t, deviceID, actor, changes...)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	for _, ch := range changes {
		data, err := eventData(ch.Data)
		if err != nil {
			return err
		}
		if err := s.appendFleetEvent(ctx, t, ch.Type, actor, data); err != nil {
			return err
		}
	}
	return nil
}

// RevokedSince returns the revocation feed after position seq, in feed
// order, and the feed's head: pass head as seq next time to get only what
// is newer. Positions are read up to a head read first, so no revocation
// still being committed can be skipped.
func (s *Store) RevokedSince(ctx context.Context, seq int64) ([]RevokedRef, int64, error) {
	var head int64
	if err := s.queryRow(ctx, "SELECT seq FROM revocation_head WHERE id = 1").Scan(&head); err != nil {
		return nil, 0, fmt.Errorf("store: read revocation feed head: %w", err)
	}
	if head <= seq {
		return nil, max(head, seq), nil
	}
	rows, err := s.query(ctx, "SELECT ca_id, serial, revoke_seq FROM certificates WHERE revoke_seq > ? AND revoke_seq <= ? ORDER BY revoke_seq", seq, head)
	if err != nil {
		return nil, 0, fmt.Errorf("store: read revocation feed: %w", err)
	}
	defer rows.Close()
	var out []RevokedRef
	for rows.Next() {
		var r RevokedRef
		if err := rows.Scan(&r.CAID, &r.Serial, &r.Seq); err != nil {
			return nil, 0, fmt.Errorf("store: read revocation feed: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: read revocation feed: %w", err)
	}
	return out, head, nil
}

// CertificateStatus returns the record of the certificate caID issued with
// serial (any form NormalizeSerial accepts), revocation included, or
// ErrNotFound when Muster has no record of it.
func (s *Store) CertificateStatus(ctx context.Context, caID, serial string) (*Certificate, error) {
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return nil, fmt.Errorf("store: certificate of CA %s: %w: %w", caID, err, ErrNotFound)
	}
	c, err := scanCertificate(s.queryRow(ctx, "SELECT "+certificateCols+" FROM certificates WHERE ca_id = ? AND serial = ?", caID, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: certificate %s of CA %s: %w", serial, caID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read certificate %s of CA %s: %w", serial, caID, err)
	}
	return c, nil
}

// RevokedByCA returns every certificate caID issued that is revoked, in
// feed order: the entries of its CRL. Expired certificates stay listed, as
// RFC 5280 allows and relying parties with slow clocks need.
func (s *Store) RevokedByCA(ctx context.Context, caID string) ([]RevokedEntry, error) {
	rows, err := s.query(ctx, "SELECT serial, revoked_at, revoke_reason FROM certificates WHERE ca_id = ? AND revoke_seq IS NOT NULL ORDER BY revoke_seq", caID)
	if err != nil {
		return nil, fmt.Errorf("store: list revocations of CA %s: %w", caID, err)
	}
	defer rows.Close()
	out := []RevokedEntry{}
	for rows.Next() {
		var e RevokedEntry
		var reason sql.NullInt64
		if err := rows.Scan(&e.Serial, &e.RevokedAt, &reason); err != nil {
			return nil, fmt.Errorf("store: list revocations of CA %s: %w", caID, err)
		}
		e.RevokedAt = e.RevokedAt.UTC()
		e.Reason = int(reason.Int64)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list revocations of CA %s: %w", caID, err)
	}
	return out, nil
}
