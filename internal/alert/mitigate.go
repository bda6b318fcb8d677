package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// History events of mitigations. A quarantine or suspension is recorded as
// the state change it is (fleet.EventStateChanged) with the alert id in its
// data; the other actions, and every revert, as these.
const (
	EventMitigation         = "device.mitigation_applied"
	EventMitigationReverted = "device.mitigation_reverted"
)

// ErrNotReversible means an action cannot be undone: a revoked certificate
// stays revoked, a renewal stays done.
var ErrNotReversible = errors.New("alert: this action cannot be reverted")

// ErrUnavailable means the node lacks what an action needs (no gateway to
// send a rotate command through, no revocation service).
var ErrUnavailable = errors.New("alert: this node cannot apply the action")

// revokeReasonKeyCompromise is RFC 5280's keyCompromise: a revocation by
// the detector suspects the key.
const revokeReasonKeyCompromise = 1

// mitigationData is the history event data of a mitigation.
type mitigationData struct {
	Action  string      `json:"action"`
	AlertID string      `json:"alertId"`
	From    fleet.State `json:"from,omitempty"`
	To      fleet.State `json:"to,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Detail  string      `json:"detail,omitempty"`
	Auto    bool        `json:"auto,omitempty"`
}

// Apply applies one mitigation to the alert's device, records it in the
// device's history with the alert id, and records its outcome on the
// alert (a failure too, with what went wrong).
func (m *Manager) Apply(ctx context.Context, alertID string, action detect.Action, actor string, auto bool) (*store.AlertAction, error) {
	if err := detect.ValidateAction(action); err != nil {
		return nil, err
	}
	a, err := m.store.GetAlert(ctx, alertID)
	if err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("alert %s: %s", a.ID, a.Summary)
	detail, err := m.apply(ctx, a, action, actor, reason, auto)
	rec := store.AlertAction{AlertID: a.ID, DeviceID: a.DeviceID, Action: string(action), Status: store.ActionApplied, Detail: detail, Auto: auto, Actor: actor}
	if err != nil {
		rec.Status, rec.Detail = store.ActionFailed, err.Error()
	}
	out, rerr := m.store.RecordAlertAction(ctx, rec)
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	if err != nil {
		return out, err
	}
	m.log.InfoContext(ctx, "mitigation applied", "alert", a.ID, "device", a.DeviceID, "action", action, "actor", actor, "auto", auto)
	return out, nil
}

func (m *Manager) apply(ctx context.Context, a *store.Alert, action detect.Action, actor, reason string, auto bool) (string, error) {
	data := mitigationData{Action: string(action), AlertID: a.ID, Reason: reason, Auto: auto}
	switch action {
	case detect.ActionQuarantine:
		return m.move(ctx, a.DeviceID, fleet.StateQuarantined, actor, data)
	case detect.ActionSuspend:
		return m.move(ctx, a.DeviceID, fleet.StateSuspended, actor, data)
	case detect.ActionRevoke:
		if m.revoker == nil {
			return "", ErrUnavailable
		}
		n, err := m.revoker.RevokeDeviceCertificates(ctx, a.DeviceID, revokeReasonKeyCompromise, actor)
		if err != nil {
			return "", err
		}
		data.Detail = fmt.Sprintf("%d certificates revoked", n)
		return data.Detail, m.store.RecordDeviceEvent(ctx, a.DeviceID, actor, store.Change{Type: EventMitigation, Data: data})
	case detect.ActionRotate:
		if m.rotator == nil {
			return "", ErrUnavailable
		}
		connected, err := m.rotator.Rotate(ctx, a.DeviceID, reason)
		if err != nil {
			return "", err
		}
		data.Detail = "rotate command sent (retained)"
		if connected {
			data.Detail = "rotate command sent to the connected device"
		}
		return data.Detail, m.store.RecordDeviceEvent(ctx, a.DeviceID, actor, store.Change{Type: EventMitigation, Data: data})
	}
	group := action.Group()
	if group == OperatorsGroup {
		return "", fmt.Errorf("alert: a mitigation may not add a device to %s, whose members receive alerts", OperatorsGroup)
	}
	_, err := m.store.UpdateDevice(ctx, a.DeviceID, 0, actor, func(d *fleet.Device) (*store.Change, error) {
		if slices.Contains(d.Inventory.Groups, group) {
			return nil, nil
		}
		d.Inventory.Groups = append(d.Inventory.Groups, group)
		data.Detail = "added to group " + group
		return &store.Change{Type: EventMitigation, Data: data}, nil
	})
	return "added to group " + group, err
}

// move changes a device's state through the lifecycle rules. A device
// already in the target state is left alone.
func (m *Manager) move(ctx context.Context, id string, to fleet.State, actor string, data mitigationData) (string, error) {
	detail := ""
	_, err := m.store.UpdateDevice(ctx, id, 0, actor, func(d *fleet.Device) (*store.Change, error) {
		if d.Lifecycle.State == to {
			detail = "already " + string(to)
			return nil, nil
		}
		ch, err := d.Move(to, actor, data.Reason, now())
		if err != nil {
			return nil, err
		}
		data.From, data.To = ch.From, ch.To
		detail = fmt.Sprintf("%s -> %s", ch.From, ch.To)
		return &store.Change{Type: fleet.EventStateChanged, Data: data}, nil
	})
	return detail, err
}

// Revert undoes an applied action, with reason for the device's history,
// where that makes sense: a quarantined
// or suspended device becomes active again, a device added to a group
// leaves it. Revocations and renewals cannot be undone (ErrNotReversible).
func (m *Manager) Revert(ctx context.Context, actionID, actor, reason string) (*store.AlertAction, error) {
	act, err := m.store.GetAlertAction(ctx, actionID)
	if err != nil {
		return nil, err
	}
	if act.Status != store.ActionApplied {
		return nil, fmt.Errorf("action %s is %s, not applied: %w", act.ID, act.Status, store.ErrAlertState)
	}
	action := detect.Action(act.Action)
	if reason == "" {
		reason = "revert of action " + act.ID
	}
	data := mitigationData{Action: act.Action, AlertID: act.AlertID, Reason: reason}
	switch {
	case action == detect.ActionQuarantine || action == detect.ActionSuspend:
		from := fleet.StateQuarantined
		if action == detect.ActionSuspend {
			from = fleet.StateSuspended
		}
		_, err = m.store.UpdateDevice(ctx, act.DeviceID, 0, actor, func(d *fleet.Device) (*store.Change, error) {
			if d.Lifecycle.State != from {
				return nil, fmt.Errorf("device %s is %s now, not %s: change its state directly: %w", act.DeviceID, d.Lifecycle.State, from, store.ErrAlertState)
			}
			ch, err := d.Move(fleet.StateActive, actor, data.Reason, now())
			if err != nil {
				return nil, err
			}
			data.From, data.To = ch.From, ch.To
			return &store.Change{Type: fleet.EventStateChanged, Data: data}, nil
		})
	case action.Group() != "":
		group := action.Group()
		_, err = m.store.UpdateDevice(ctx, act.DeviceID, 0, actor, func(d *fleet.Device) (*store.Change, error) {
			i := slices.Index(d.Inventory.Groups, group)
			if i < 0 {
				return nil, nil
			}
			d.Inventory.Groups = slices.Delete(d.Inventory.Groups, i, i+1)
			data.Detail = "removed from group " + group
			return &store.Change{Type: EventMitigationReverted, Data: data}, nil
		})
	default:
		return nil, fmt.Errorf("%s: %w", act.Action, ErrNotReversible)
	}
	if err != nil {
		return nil, err
	}
	return m.store.MarkActionReverted(ctx, act.ID, actor)
}
