package fleet

import "time"

// Move changes d's state to to when Transition allows it, and records the
// change in d's timeline. It is how code outside the lifecycle rules
// changes a state, so the rules are asked every time.
func (d *Device) Move(to State, actor, reason string, at time.Time) (StateChange, error) {
	from := d.Lifecycle.State
	if err := Transition(from, to); err != nil {
		return StateChange{}, err
	}
	ch := StateChange{From: from, To: to, At: at, Actor: actor, Reason: reason}
	d.Lifecycle.State = to
	d.Lifecycle.StateChangedAt = at
	d.Lifecycle.Changes = append(d.Lifecycle.Changes, ch)
	return ch, nil
}
