package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestHistoryTamperingIsFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		for i := range 4 {
			if _, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
				d.Attributes["step"] = string(rune('a' + i))
				// Key order and spacing that re-encoding would change.
				return &Change{Type: fleet.EventUpdated, Data: json.RawMessage(`{"z": 1, "a": [2, 3]}`)}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		evs := mustVerify(t, s, d.ID, 5)
		mustEqual(t, "raw data kept byte for byte", string(evs[2].Data), `{"z": 1, "a": [2, 3]}`)

		tamper := func(query string, args ...any) {
			t.Helper()
			if _, err := s.DB().ExecContext(ctx, s.d.rebind(query), args...); err != nil {
				t.Fatal(err)
			}
		}
		tamper(`UPDATE events SET data = '{"z": 1, "a": [2, 4]}' WHERE subject = ? AND seq = 3`, d.ID)
		evs, _ = s.History(ctx, d.ID)
		br := fleet.VerifyChain(evs)
		if br == nil || br.Seq != 3 {
			t.Fatalf("VerifyChain after altering event 3 = %+v, want a break at 3", br)
		}

		tamper(`UPDATE events SET data = '{"z": 1, "a": [2, 3]}' WHERE subject = ? AND seq = 3`, d.ID)
		mustVerify(t, s, d.ID, 5)
		tamper(`UPDATE events SET actor = 'someone-else' WHERE subject = ? AND seq = 4`, d.ID)
		evs, _ = s.History(ctx, d.ID)
		if br := fleet.VerifyChain(evs); br == nil || br.Seq != 4 {
			t.Fatalf("VerifyChain after altering the actor of 4 = %+v, want a break at 4", br)
		}
		tamper(`DELETE FROM events WHERE subject = ? AND seq = 2`, d.ID)
		evs, _ = s.History(ctx, d.ID)
		if br := fleet.VerifyChain(evs); br == nil || br.Seq != 3 {
			t.Fatalf("VerifyChain after deleting 2 = %+v, want a break at 3", br)
		}
	})
}

func TestFleetLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		evs, err := s.History(ctx, fleet.FleetSubject)
		if err != nil || len(evs) != 0 {
			t.Fatalf("empty fleet log = %v, %v", evs, err)
		}
		if _, err := s.History(ctx, "dev_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("History(unknown device) = %v, want ErrNotFound", err)
		}
		for i := range 3 {
			if err := s.AppendFleetEvent(ctx, "config.changed", "admin", map[string]int{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendFleetEvent(ctx, "config.changed", "admin", make(chan int)); err == nil {
			t.Fatal("AppendFleetEvent with unmarshallable data succeeded")
		}
		if err := s.AppendFleetEvent(ctx, "", "admin", nil); err == nil {
			t.Fatal("AppendFleetEvent without a type succeeded")
		}
		evs = mustVerify(t, s, fleet.FleetSubject, 3)
		mustEqual(t, "data", string(evs[2].Data), `{"n":2}`)
		mustEqual(t, "subject", evs[0].Subject, fleet.FleetSubject)
	})
}

// TestEventTimesRoundTrip checks that event times come back exactly, to the
// microsecond and in UTC, whatever zone the clock reports.
func TestEventTimesRoundTrip(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone)
	forEachBackendURL(t, func(t *testing.T, u string) {
		s, err := Open(t.Context(), Config{URL: u, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		want := at.UTC().Truncate(time.Microsecond)
		if !d.CreatedAt.Equal(want) {
			t.Errorf("CreatedAt = %v, want %v", d.CreatedAt, want)
		}
		evs := mustVerify(t, s, d.ID, 1)
		if evs[0].At != want {
			t.Errorf("event At = %#v, want %#v", evs[0].At, want)
		}
	})
}
