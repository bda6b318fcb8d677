package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestCountDevices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		n, err := s.CountDevices(ctx, DeviceFilter{})
		if err != nil || n != 0 {
			t.Fatalf("CountDevices on an empty store = %d, %v; want 0", n, err)
		}
		all := filterFleet(t, s)
		for _, f := range testFilters {
			want := int64(0)
			for _, d := range all {
				if matches(t, d, f) {
					want++
				}
			}
			got, err := s.CountDevices(ctx, f)
			if err != nil {
				t.Fatalf("CountDevices(%+v): %v", f, err)
			}
			if got != want {
				t.Errorf("CountDevices(%+v) = %d, want %d", f, got, want)
			}
		}
		mustEqual(t, "count of all devices", countOf(t, s, DeviceFilter{}), int64(len(all)))
		// A manufacturer's count is its factory's filter added to its own:
		// the other factory's devices never count, whatever else matches.
		for _, f := range []DeviceFilter{{Factory: "f1"}, {Factory: "f1", Model: "m2"}, {Factory: "f1", Group: "all"}} {
			want := int64(0)
			for _, d := range all {
				if d.Identity.Factory == "f1" && matches(t, d, f) {
					want++
				}
			}
			mustEqual(t, fmt.Sprintf("count of %+v", f), countOf(t, s, f), want)
		}
		mustEqual(t, "count of an unknown factory", countOf(t, s, DeviceFilter{Factory: "f9"}), int64(0))

		_, err = s.CountDevices(ctx, DeviceFilter{State: "actve"})
		var fe *fleet.FieldError
		if !errors.As(err, &fe) || fe.Field != "state" {
			t.Fatalf("CountDevices(unknown state) = %v, want a FieldError on state", err)
		}
	})
}

func countOf(t *testing.T, s *Store, f DeviceFilter) int64 {
	t.Helper()
	n, err := s.CountDevices(t.Context(), f)
	if err != nil {
		t.Fatalf("CountDevices(%+v): %v", f, err)
	}
	return n
}
