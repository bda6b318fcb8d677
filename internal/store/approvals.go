package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/muster-iot/muster/internal/fleet"
)

// Device history events of manual approval.
const (
	EventProvisioningPending  = "provisioning.pending"
	EventProvisioningApproved = "provisioning.approved"
	EventProvisioningRejected = "provisioning.rejected"
)

// decisionData is the data of provisioning.approved and .rejected events.
type decisionData struct {
	RequestID string      `json:"requestId"`
	Reason    string      `json:"reason,omitempty"`
	From      fleet.State `json:"from,omitempty"`
	To        fleet.State `json:"to,omitempty"`
}

// PendingApprovals returns the requests waiting for an operator, oldest
// first.
func (s *Store) PendingApprovals(ctx context.Context) ([]ProvisioningRequest, error) {
	rows, err := s.query(ctx, "SELECT "+requestCols+" FROM provisioning_requests WHERE status = '"+RequestPending+"' ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: pending approvals: %w", err)
	}
	out, err := scanRequests(rows)
	if err != nil {
		return nil, fmt.Errorf("store: pending approvals: %w", err)
	}
	return out, nil
}

// DecideApproval approves or rejects one pending request, with the
// operator's reason, and records the decision in the device's history in
// the same transaction. Rejecting a first provisioning also moves the
// device from pending to rejected. A request that is not pending is
// ErrVersionMismatch; an unknown one ErrNotFound.
func (s *Store) DecideApproval(ctx context.Context, id string, approve bool, reason, actor string) (*ProvisioningRequest, error) {
	var out *ProvisioningRequest
	err := s.inTx(ctx, func(t *txn) error {
		q, err := scanRequest(t.queryRow(ctx, "SELECT "+requestCols+" FROM provisioning_requests r WHERE id = ?"+t.d.forUpdate("r"), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: provisioning request %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read provisioning request %s: %w", id, err)
		}
		if q.Status != RequestPending {
			return fmt.Errorf("store: provisioning request %s is %s, not pending: %w", id, q.Status, ErrVersionMismatch)
		}
		now := s.clock()
		q.Status, q.Reason, q.DecidedBy, q.DecidedAt, q.UpdatedAt = RequestApproved, reason, actor, &now, now
		typ := EventProvisioningApproved
		if !approve {
			q.Status, typ = RequestRejected, EventProvisioningRejected
		}
		if _, err := t.exec(ctx, "UPDATE provisioning_requests SET status = ?, reason = ?, decided_by = ?, decided_at = ?, updated_at = ? WHERE id = ?",
			q.Status, reason, actor, now, now, id); err != nil {
			return fmt.Errorf("store: decide provisioning request %s: %w", id, err)
		}
		data := decisionData{RequestID: id, Reason: reason}
		if approve || q.Kind != RequestProvision {
			out = q
			return s.appendDeviceEvents(ctx, t, q.DeviceID, actor, Change{Type: typ, Data: data})
		}
		_, err = s.updateInTx(ctx, t, q.DeviceID, 0, actor, func(d *fleet.Device) (*Change, error) {
			if d.Lifecycle.State != fleet.StatePending {
				return &Change{Type: typ, Data: data}, nil
			}
			ch, err := d.Move(fleet.StateRejected, actor, reason, now)
			if err != nil {
				return nil, err
			}
			data.From, data.To = ch.From, ch.To
			return &Change{Type: typ, Data: data}, nil
		})
		out = q
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
