package fleet

import (
	"fmt"
	"slices"
	"strings"
)

// State is a device's lifecycle state.
type State string

// The lifecycle states. See docs/lifecycle.md for the diagram.
const (
	StateManufactured   State = "manufactured"
	StatePending        State = "pending"
	StateRejected       State = "rejected"
	StateProvisioned    State = "provisioned"
	StateActive         State = "active"
	StateQuarantined    State = "quarantined"
	StateSuspended      State = "suspended"
	StateReprovisioning State = "reprovisioning"
	StateDecommissioned State = "decommissioned"
	StateRefurbished    State = "refurbished"
	StateDisposed       State = "disposed"
)

// States lists every lifecycle state in lifecycle order.
var States = []State{
	StateManufactured, StatePending, StateRejected, StateProvisioned, StateActive,
	StateQuarantined, StateSuspended, StateReprovisioning, StateDecommissioned,
	StateRefurbished, StateDisposed,
}

// transitions is the whole lifecycle graph. Decommissioning is reachable from
// every live state because a device can be pulled from service at any point;
// disposal and refurbishment only follow decommissioning.
var transitions = map[State][]State{
	StateManufactured:   {StatePending, StateProvisioned, StateDecommissioned},
	StatePending:        {StateProvisioned, StateRejected, StateManufactured, StateDecommissioned},
	StateRejected:       {StatePending, StateDecommissioned},
	StateProvisioned:    {StateActive, StateReprovisioning, StateSuspended, StateQuarantined, StateDecommissioned},
	StateActive:         {StateQuarantined, StateSuspended, StateReprovisioning, StateDecommissioned},
	StateQuarantined:    {StateActive, StateSuspended, StateReprovisioning, StateDecommissioned},
	StateSuspended:      {StateActive, StateReprovisioning, StateDecommissioned},
	StateReprovisioning: {StateProvisioned, StateSuspended, StateDecommissioned},
	StateDecommissioned: {StateRefurbished, StateDisposed},
	StateRefurbished:    {StateManufactured},
	StateDisposed:       {},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// ParseState returns the state named s, or an error listing the known ones.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("unknown state %q: want one of %s", s, joinStates(States))
	}
	return st, nil
}

// AllowedFrom returns the states a device in state s may move to.
func AllowedFrom(s State) []State {
	return slices.Clone(transitions[s])
}

// TransitionError is returned when a state change is not allowed. It names
// the states that are allowed, so callers can tell the user what to do.
type TransitionError struct {
	From, To State
	Allowed  []State
}

func (e *TransitionError) Error() string {
	if len(e.Allowed) == 0 {
		return fmt.Sprintf("cannot move a %s device to %s: %s is final", e.From, e.To, e.From)
	}
	return fmt.Sprintf("cannot move a %s device to %s: allowed next states are %s", e.From, e.To, joinStates(e.Allowed))
}

// Transition decides whether a device in state from may move to state to.
// It is the only place lifecycle rules live; nothing else changes a state.
func Transition(from, to State) error {
	if !from.Valid() {
		return fmt.Errorf("unknown current state %q", from)
	}
	if !to.Valid() {
		return fmt.Errorf("unknown state %q: want one of %s", to, joinStates(States))
	}
	if !slices.Contains(transitions[from], to) {
		return &TransitionError{From: from, To: to, Allowed: AllowedFrom(from)}
	}
	return nil
}

// Gone reports whether a device in state s has left the fleet under its
// current identity: decommissioned, refurbished (it comes back only as a
// newly manufactured device) or disposed. Nothing it holds will be honoured
// again, unlike a suspended device, which may be reinstated.
func Gone(s State) bool {
	switch s {
	case StateDecommissioned, StateRefurbished, StateDisposed:
		return true
	}
	return false
}

// CanConnect reports whether a device in state s may hold a live session.
func CanConnect(s State) bool {
	switch s {
	case StateProvisioned, StateActive, StateQuarantined, StateReprovisioning:
		return true
	}
	return false
}

func joinStates(ss []State) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}
