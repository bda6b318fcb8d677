package fleet

import (
	"errors"
	"slices"
	"testing"
)

// expected is the lifecycle written out independently of the transitions
// table: the test walks every (from, to) pair against it.
var expected = map[[2]State]bool{
	{StateManufactured, StatePending}:        true,
	{StateManufactured, StateProvisioned}:    true,
	{StateManufactured, StateDecommissioned}: true,

	{StatePending, StateProvisioned}:    true,
	{StatePending, StateRejected}:       true,
	{StatePending, StateManufactured}:   true,
	{StatePending, StateDecommissioned}: true,

	{StateRejected, StatePending}:        true,
	{StateRejected, StateDecommissioned}: true,

	{StateProvisioned, StateActive}:         true,
	{StateProvisioned, StateReprovisioning}: true,
	{StateProvisioned, StateSuspended}:      true,
	{StateProvisioned, StateQuarantined}:    true,
	{StateProvisioned, StateDecommissioned}: true,

	{StateActive, StateQuarantined}:    true,
	{StateActive, StateSuspended}:      true,
	{StateActive, StateReprovisioning}: true,
	{StateActive, StateDecommissioned}: true,

	{StateQuarantined, StateActive}:         true,
	{StateQuarantined, StateSuspended}:      true,
	{StateQuarantined, StateReprovisioning}: true,
	{StateQuarantined, StateDecommissioned}: true,

	{StateSuspended, StateActive}:         true,
	{StateSuspended, StateReprovisioning}: true,
	{StateSuspended, StateDecommissioned}: true,

	{StateReprovisioning, StateProvisioned}:    true,
	{StateReprovisioning, StateSuspended}:      true,
	{StateReprovisioning, StateDecommissioned}: true,

	{StateDecommissioned, StateRefurbished}: true,
	{StateDecommissioned, StateDisposed}:    true,

	{StateRefurbished, StateManufactured}: true,
}

func TestTransitionExhaustive(t *testing.T) {
	for _, from := range States {
		for _, to := range States {
			err := Transition(from, to)
			want := expected[[2]State{from, to}]
			if want && err != nil {
				t.Errorf("%s -> %s: want allowed, got %v", from, to, err)
			}
			if !want {
				var te *TransitionError
				if !errors.As(err, &te) {
					t.Errorf("%s -> %s: want *TransitionError, got %v", from, to, err)
					continue
				}
				if !slices.Equal(te.Allowed, AllowedFrom(from)) {
					t.Errorf("%s -> %s: error lists %v, allowed are %v", from, to, te.Allowed, AllowedFrom(from))
				}
			}
		}
	}
	// Every allowed edge in the table is in the expectation, so the two
	// cannot drift apart silently.
	n := 0
	for _, from := range States {
		n += len(AllowedFrom(from))
	}
	if n != len(expected) {
		t.Errorf("transition table has %d edges, expectation has %d", n, len(expected))
	}
}

func TestTransitionUnknownStates(t *testing.T) {
	if err := Transition("bogus", StateActive); err == nil {
		t.Error("unknown from state accepted")
	}
	if err := Transition(StateActive, "bogus"); err == nil {
		t.Error("unknown to state accepted")
	}
	if _, err := ParseState("Active"); err == nil {
		t.Error("ParseState accepted a wrongly cased state")
	}
	if s, err := ParseState("quarantined"); err != nil || s != StateQuarantined {
		t.Errorf("ParseState(quarantined) = %v, %v", s, err)
	}
}

func TestDisposedIsFinal(t *testing.T) {
	err := Transition(StateDisposed, StateManufactured)
	var te *TransitionError
	if !errors.As(err, &te) || len(te.Allowed) != 0 {
		t.Fatalf("disposed must be final, got %v", err)
	}
	if te.Error() == "" {
		t.Fatal("empty message")
	}
}

func TestEveryStateReachableFromManufactured(t *testing.T) {
	seen := map[State]bool{StateManufactured: true}
	queue := []State{StateManufactured}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, n := range AllowedFrom(s) {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	for _, s := range States {
		if !seen[s] {
			t.Errorf("state %s is unreachable", s)
		}
	}
}

func TestCanConnect(t *testing.T) {
	for _, s := range States {
		want := s == StateProvisioned || s == StateActive || s == StateQuarantined || s == StateReprovisioning
		if CanConnect(s) != want {
			t.Errorf("CanConnect(%s) = %v", s, !want)
		}
	}
}
