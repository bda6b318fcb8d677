package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// stateRequest is the body of POST /v1/devices/{id}/state.
type stateRequest struct {
	State  fleet.State `json:"state"`
	Reason string      `json:"reason,omitempty"`
}

// decommissionRequest is the body of POST /v1/devices/{id}/decommission.
type decommissionRequest struct {
	Reason string                 `json:"reason"`
	Wipe   *fleet.WipeAttestation `json:"wipe"`
}

// stateChange is the event data of every state change.
type stateChange struct {
	From   fleet.State `json:"from"`
	To     fleet.State `json:"to"`
	Reason string      `json:"reason,omitempty"`
}

// decommissioned is the event data of a decommissioning.
type decommissioned struct {
	stateChange
	Wipe fleet.WipeAttestation `json:"wipe"`
}

// disposed is the event data of a disposal.
type disposed struct {
	stateChange
	Disposal fleet.Disposal `json:"disposal"`
}

func (s *Server) changeState(r *http.Request, in *stateRequest) (*fleet.Device, error) {
	to, err := fleet.ParseState(string(in.State))
	if err != nil {
		return nil, validationError("state", "%v", err)
	}
	// These states carry evidence the generic route cannot take.
	switch to {
	case fleet.StateDecommissioned:
		return nil, validationError("state", "use POST /v1/devices/{id}/decommission, which records the data-wipe attestation")
	case fleet.StateDisposed, fleet.StateRefurbished:
		return nil, validationError("state", "use POST /v1/devices/{id}/disposal, which records where the hardware went")
	}
	if err := checkReason(in.Reason, false); err != nil {
		return nil, err
	}
	return s.changeDevice(r, fleet.EventStateChanged, func(d *fleet.Device, now time.Time, actor string) (any, error) {
		return moveTo(d, to, actor, in.Reason, now)
	})
}

func (s *Server) decommission(r *http.Request, in *decommissionRequest) (*fleet.Device, error) {
	if err := checkReason(in.Reason, true); err != nil {
		return nil, err
	}
	if in.Wipe == nil {
		return nil, validationError("wipe", "is required: attest how the device's data was destroyed (method, by, at)")
	}
	if err := fleet.ValidateWipe(*in.Wipe); err != nil {
		return nil, prefixField("wipe", err)
	}
	return s.changeDevice(r, fleet.EventDecommission, func(d *fleet.Device, now time.Time, actor string) (any, error) {
		ch, err := moveTo(d, fleet.StateDecommissioned, actor, in.Reason, now)
		if err != nil {
			return nil, err
		}
		w := *in.Wipe
		w.At = orNow(w.At, now)
		// A refurbished device that is retired again starts a new end of
		// life; the earlier one stays in its history.
		d.EndOfLife = fleet.EndOfLife{DecommissionReason: in.Reason, DecommissionedAt: &now, Wipe: &w}
		return decommissioned{stateChange: ch, Wipe: w}, nil
	})
}

func (s *Server) dispose(r *http.Request, in *fleet.Disposal) (*fleet.Device, error) {
	if err := fleet.ValidateDisposal(*in); err != nil {
		return nil, err
	}
	to := fleet.StateDisposed
	if in.Method == "refurbish" {
		to = fleet.StateRefurbished
	}
	return s.changeDevice(r, fleet.EventDisposal, func(d *fleet.Device, now time.Time, actor string) (any, error) {
		// Transition allows disposal only from decommissioned, so a live
		// device is refused with the states it may move to.
		ch, err := moveTo(d, to, actor, "disposal: "+in.Method, now)
		if err != nil {
			return nil, err
		}
		p := *in
		p.At = orNow(p.At, now)
		d.EndOfLife.Disposal = &p
		return disposed{stateChange: ch, Disposal: p}, nil
	})
}

// moveTo is the one place a handler changes a device's state: it asks
// fleet.Transition, then records the change in the device's timeline.
func moveTo(d *fleet.Device, to fleet.State, actor, reason string, at time.Time) (stateChange, error) {
	ch, err := d.Move(to, actor, reason, at)
	if err != nil {
		return stateChange{}, err
	}
	return stateChange{From: ch.From, To: ch.To, Reason: reason}, nil
}

func checkReason(reason string, required bool) error {
	switch {
	case required && strings.TrimSpace(reason) == "":
		return validationError("reason", "is required: say why the device is retired")
	case len(reason) > fleet.MaxTextLen:
		return validationError("reason", "is longer than %d characters", fleet.MaxTextLen)
	}
	return nil
}

// orNow fills in an omitted timestamp with the time of the request.
func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}
