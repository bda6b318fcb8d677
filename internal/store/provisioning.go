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
)

// Provisioning request statuses.
const (
	// RequestPending waits for an operator's decision.
	RequestPending = "pending"
	// RequestApproved was approved and issues on the device's next retry.
	RequestApproved = "approved"
	// RequestRejected was refused by an operator; retries are refused.
	RequestRejected = "rejected"
	// RequestIssued got its certificate; retries get the same one.
	RequestIssued = "issued"
)

// Provisioning request kinds.
const (
	RequestProvision   = "provision"
	RequestReprovision = "reprovision"
	RequestRenew       = "renew"
)

// ProvisioningRequest is one provisioning attempt: who asked (Requester)
// with which CSR, for which device, under which template version, and how
// it stands. A retry with the same requester and CSR finds it again.
type ProvisioningRequest struct {
	ID              string          `json:"id"`
	Requester       string          `json:"requester"`
	CSRSHA256       string          `json:"csrSha256"`
	DeviceID        string          `json:"deviceId"`
	Kind            string          `json:"kind"`
	Template        string          `json:"template"`
	TemplateVersion int64           `json:"templateVersion"`
	Status          string          `json:"status"`
	Parameters      json.RawMessage `json:"parameters,omitempty"`
	// CAID and CertSerial name the certificate once issued.
	CAID       string `json:"caId,omitempty"`
	CertSerial string `json:"certSerial,omitempty"`
	// Reason is the operator's reason for a decision.
	Reason    string     `json:"reason,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	DecidedBy string     `json:"decidedBy,omitempty"`
	DecidedAt *time.Time `json:"decidedAt,omitempty"`
}

const requestCols = "id, requester, csr_sha256, device_id, kind, template, template_version, status, parameters, ca_id, cert_serial, reason, created_at, updated_at, decided_by, decided_at"

func scanRequest(r scanner) (*ProvisioningRequest, error) {
	var q ProvisioningRequest
	var params string
	var decided sql.NullTime
	if err := r.Scan(&q.ID, &q.Requester, &q.CSRSHA256, &q.DeviceID, &q.Kind, &q.Template, &q.TemplateVersion, &q.Status,
		&params, &q.CAID, &q.CertSerial, &q.Reason, &q.CreatedAt, &q.UpdatedAt, &q.DecidedBy, &decided); err != nil {
		return nil, err
	}
	q.Parameters = json.RawMessage(params)
	q.CreatedAt, q.UpdatedAt = q.CreatedAt.UTC(), q.UpdatedAt.UTC()
	q.DecidedAt = timePtr(decided)
	return &q, nil
}

func scanRequests(rows *sql.Rows) ([]ProvisioningRequest, error) {
	return scanAll(rows, scanRequest)
}

// ProvisioningRequests returns, in one read, the request of requester with
// the CSR whose SHA-256 is csrSHA256 (nil when there is none) and the
// requester's other requests still in flight (pending or approved): what
// the pipeline needs to answer a retry or refuse a second CSR.
func (s *Store) ProvisioningRequests(ctx context.Context, requester, csrSHA256 string) (same *ProvisioningRequest, inFlight []ProvisioningRequest, err error) {
	rows, err := s.query(ctx, "SELECT "+requestCols+" FROM provisioning_requests WHERE requester = ? AND (csr_sha256 = ? OR status IN (?, ?)) ORDER BY id",
		requester, csrSHA256, RequestPending, RequestApproved)
	if err != nil {
		return nil, nil, fmt.Errorf("store: provisioning requests of %s: %w", requester, err)
	}
	all, err := scanRequests(rows)
	if err != nil {
		return nil, nil, fmt.Errorf("store: provisioning requests of %s: %w", requester, err)
	}
	for i := range all {
		if all[i].CSRSHA256 == csrSHA256 {
			same = &all[i]
			continue
		}
		inFlight = append(inFlight, all[i])
	}
	return same, inFlight, nil
}

// DeviceByBirthKey returns the device whose birth certificate certifies
// the public key with the given fingerprint (pki.PublicKeyFingerprint), or
// ErrNotFound: how a device proving itself with its birth certificate is
// found, in one indexed read.
func (s *Store) DeviceByBirthKey(ctx context.Context, fingerprint string) (*fleet.Device, error) {
	return s.oneDevice(ctx, "device of birth key "+fingerprint,
		deviceSelect+" JOIN certificates c ON c.device_id = d.id WHERE c.fingerprint = ? AND c.kind = ? LIMIT 1", fingerprint, CertBirth)
}

// RecordDeviceEvent appends one event to a device's history without
// changing the device: a refused provisioning attempt, say, whose reason
// the device is never told.
func (s *Store) RecordDeviceEvent(ctx context.Context, deviceID, actor string, ch Change) error {
	return s.inTx(ctx, func(t *txn) error { return s.appendDeviceEvents(ctx, t, deviceID, actor, ch) })
}

// ProvisioningCommit is everything one provisioning step writes, in one
// transaction.
type ProvisioningCommit struct {
	// Request is written as given: inserted when ExpectStatus is empty
	// (a second request of the same requester and CSR is then
	// ErrDuplicate), otherwise updated only while its stored status is
	// still ExpectStatus (else ErrVersionMismatch).
	Request      ProvisioningRequest
	ExpectStatus string
	// Update changes the device (state, attributes, groups) and says
	// which event records it; see UpdateDevice. nil leaves the device
	// alone.
	Update func(*fleet.Device) (*Change, error)
	// Certificate, when set, is recorded for the device (its DeviceID and
	// CreatedAt are filled in) and named by the request.
	Certificate *Certificate
	// RevokeOthers, when set, revokes the device's other operational
	// certificates with this RFC 5280 reason: a re-provisioned device's
	// old keys are no longer its keys.
	RevokeOthers *int
	Actor        string
}

// CommitProvisioning writes c all or nothing and returns the device as
// stored afterwards.
func (s *Store) CommitProvisioning(ctx context.Context, c *ProvisioningCommit) (*fleet.Device, error) {
	devs, errs, err := s.CommitProvisionings(ctx, []*ProvisioningCommit{c})
	if err != nil {
		return nil, err
	}
	return devs[0], errs[0]
}

// CommitProvisionings writes many commits in one transaction, each all or
// nothing on its own (a savepoint each): what a node does under load, so
// that one commit, not one per device, pays for the transaction. errs[i]
// is commit i's own failure; err is a failure of the whole transaction,
// in which case nothing was written.
func (s *Store) CommitProvisionings(ctx context.Context, cs []*ProvisioningCommit) (devs []*fleet.Device, errs []error, err error) {
	devs, errs = make([]*fleet.Device, len(cs)), make([]error, len(cs))
	err = s.inTx(ctx, func(t *txn) error {
		for i, c := range cs {
			if len(cs) == 1 {
				devs[i], errs[i] = s.commitOne(ctx, t, c)
				return errs[i]
			}
			if _, err := t.exec(ctx, "SAVEPOINT provision"); err != nil {
				return fmt.Errorf("store: savepoint: %w", err)
			}
			devs[i], errs[i] = s.commitOne(ctx, t, c)
			end := "RELEASE SAVEPOINT provision"
			if errs[i] != nil {
				// Rolling back to a savepoint keeps it; release it too.
				end = "ROLLBACK TO SAVEPOINT provision; RELEASE SAVEPOINT provision"
				devs[i] = nil
			}
			for _, stmt := range strings.Split(end, "; ") {
				if _, err := t.exec(ctx, stmt); err != nil {
					return fmt.Errorf("store: %s: %w", stmt, err)
				}
			}
		}
		return nil
	})
	if len(cs) == 1 && err != nil && errors.Is(err, errs[0]) {
		err = nil // the one commit's own failure, reported in errs
	}
	if err != nil {
		return nil, nil, err
	}
	for i, c := range cs {
		switch {
		case errs[i] != nil && s.d.isUniqueViolation(errs[i]):
			errs[i] = fmt.Errorf("store: provisioning request of %s was written concurrently: %w", c.Request.Requester, ErrDuplicate)
		case errs[i] == nil && devs[i] == nil:
			devs[i], errs[i] = s.GetDevice(ctx, c.Request.DeviceID)
		}
	}
	return devs, errs, nil
}

// commitOne writes one commit inside t.
func (s *Store) commitOne(ctx context.Context, t *txn, c *ProvisioningCommit) (*fleet.Device, error) {
	now := s.clock()
	q := c.Request
	if q.ID == "" {
		q.ID = fleet.NewID("prq_", now)
	}
	if q.CreatedAt.IsZero() {
		q.CreatedAt = now
	}
	q.UpdatedAt = now
	if len(q.Parameters) == 0 {
		q.Parameters = json.RawMessage("{}")
	}
	var cert *Certificate
	if c.Certificate != nil {
		cc := *c.Certificate
		cc.DeviceID, cc.CreatedAt = q.DeviceID, now
		cert = &cc
		q.CAID, q.CertSerial = cc.CAID, cc.Serial
	}
	if err := writeRequest(ctx, t, &q, c.ExpectStatus); err != nil {
		return nil, err
	}
	var dev *fleet.Device
	if c.Update != nil {
		var err error
		if dev, err = s.updateInTx(ctx, t, q.DeviceID, 0, c.Actor, c.Update); err != nil {
			return nil, err
		}
	}
	if cert != nil {
		if err := insertCertificates(ctx, t, []Certificate{*cert}); err != nil {
			return nil, err
		}
	}
	if c.RevokeOthers != nil {
		if err := checkRevocationReason(*c.RevokeOthers); err != nil {
			return nil, err
		}
		old, err := liveOperational(ctx, t, q.DeviceID, cert)
		if err != nil {
			return nil, err
		}
		if err := s.revoke(ctx, t, old, *c.RevokeOthers, c.Actor); err != nil {
			return nil, err
		}
	}
	return dev, nil
}

// writeRequest inserts q, or updates it from status expect.
func writeRequest(ctx context.Context, t *txn, q *ProvisioningRequest, expect string) error {
	if expect == "" {
		_, err := t.exec(ctx, "INSERT INTO provisioning_requests ("+requestCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			q.ID, q.Requester, q.CSRSHA256, q.DeviceID, q.Kind, q.Template, q.TemplateVersion, q.Status, string(q.Parameters),
			q.CAID, q.CertSerial, q.Reason, q.CreatedAt, q.UpdatedAt, q.DecidedBy, nullTime(q.DecidedAt))
		if err != nil {
			return fmt.Errorf("store: write provisioning request: %w", err)
		}
		return nil
	}
	res, err := t.exec(ctx, `UPDATE provisioning_requests SET status = ?, device_id = ?, kind = ?, template = ?, template_version = ?,
		parameters = ?, ca_id = ?, cert_serial = ?, updated_at = ? WHERE id = ? AND status = ?`,
		q.Status, q.DeviceID, q.Kind, q.Template, q.TemplateVersion, string(q.Parameters), q.CAID, q.CertSerial, q.UpdatedAt, q.ID, expect)
	if err != nil {
		return fmt.Errorf("store: update provisioning request %s: %w", q.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("store: provisioning request %s is no longer %s: %w", q.ID, expect, ErrVersionMismatch)
	}
	return nil
}

// liveOperational lists a device's unrevoked operational certificates
// other than keep, locked for revocation.
func liveOperational(ctx context.Context, t *txn, deviceID string, keep *Certificate) ([]toRevoke, error) {
	rows, err := t.query(ctx, "SELECT ca_id, serial FROM certificates c WHERE device_id = ? AND kind = ? AND revoked_at IS NULL ORDER BY created_at, ca_id, serial"+t.d.forUpdate("c"),
		deviceID, CertOperational)
	if err != nil {
		return nil, fmt.Errorf("store: operational certificates of %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []toRevoke
	for rows.Next() {
		c := toRevoke{deviceID: deviceID, kind: CertOperational}
		if err := rows.Scan(&c.caID, &c.serial); err != nil {
			return nil, fmt.Errorf("store: operational certificates of %s: %w", deviceID, err)
		}
		if keep != nil && c.caID == keep.CAID && c.serial == keep.Serial {
			continue
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// IssuedCertificate returns the certificate a request was issued, or
// ErrNotFound: what an idempotent retry answers.
func (s *Store) IssuedCertificate(ctx context.Context, q *ProvisioningRequest) (*Certificate, error) {
	if q.Status != RequestIssued || q.CAID == "" {
		return nil, fmt.Errorf("store: request %s has no certificate: %w", q.ID, ErrNotFound)
	}
	return s.CertificateStatus(ctx, q.CAID, q.CertSerial)
}
