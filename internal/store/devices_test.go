package store

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestCreateGetFind(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		before := time.Now().Add(-time.Second)
		d := mustCreate(t, s, newTestDevice("SN-1", withBOM(testBOM)))

		if !strings.HasPrefix(d.ID, "dev_") {
			t.Errorf("ID = %q, want a dev_ id", d.ID)
		}
		mustEqual(t, "Version", d.Version, int64(1))
		if d.CreatedAt.Before(before) || !d.CreatedAt.Equal(d.UpdatedAt) {
			t.Errorf("CreatedAt %v UpdatedAt %v: want now and equal", d.CreatedAt, d.UpdatedAt)
		}
		mustEqual(t, "state", d.Lifecycle.State, fleet.StateManufactured)
		mustEqual(t, "state changes", len(d.Lifecycle.Changes), 1)
		mustEqual(t, "change actor", d.Lifecycle.Changes[0].Actor, "tester")

		got, err := s.GetDevice(ctx, d.ID)
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		sameDevice(t, got, d)
		mustEqual(t, "BOM bytes", string(got.Manufacturing.BOM), testBOM)
		if !got.CreatedAt.Equal(d.CreatedAt) {
			t.Errorf("CreatedAt read back %v, want %v", got.CreatedAt, d.CreatedAt)
		}

		found, err := s.FindDevice(ctx, "f1", "m1", "SN-1")
		if err != nil {
			t.Fatalf("FindDevice: %v", err)
		}
		mustEqual(t, "found id", found.ID, d.ID)

		if _, err := s.GetDevice(ctx, "dev_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetDevice(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.FindDevice(ctx, "f1", "m1", "SN-2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("FindDevice(unknown) = %v, want ErrNotFound", err)
		}

		comps, err := s.DeviceComponents(ctx, d.ID)
		if err != nil {
			t.Fatalf("DeviceComponents: %v", err)
		}
		want, _ := fleet.ParseBOM([]byte(testBOM))
		mustEqual(t, "components", comps, want)

		evs := mustVerify(t, s, d.ID, 1)
		e := evs[0]
		mustEqual(t, "event type", e.Type, fleet.EventCreated)
		mustEqual(t, "event actor", e.Actor, "tester")
		if !e.At.Equal(d.CreatedAt) || e.At.Location() != time.UTC {
			t.Errorf("event At = %v, want %v in UTC", e.At, d.CreatedAt)
		}
		var data struct {
			Identity  fleet.Identity `json:"identity"`
			State     fleet.State    `json:"state"`
			BOMSha256 string         `json:"bomSha256"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatalf("event data %s: %v", e.Data, err)
		}
		mustEqual(t, "event identity", data.Identity, d.Identity)
		mustEqual(t, "event state", data.State, fleet.StateManufactured)
		if len(data.BOMSha256) != 64 {
			t.Errorf("bomSha256 = %q, want a SHA-256", data.BOMSha256)
		}
	})
}

func TestCreateKeepsGivenIDAndState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		d := mustCreate(t, s, newTestDevice("SN-1", func(d *fleet.Device) {
			d.ID = "dev_imported1"
			d.Version = 42
			d.Lifecycle.State = fleet.StateActive
		}))
		mustEqual(t, "ID", d.ID, "dev_imported1")
		mustEqual(t, "Version", d.Version, int64(1))
		mustEqual(t, "state", d.Lifecycle.State, fleet.StateActive)
		mustEqual(t, "first change", d.Lifecycle.Changes[0].To, fleet.StateActive)

		if err := s.CreateDevice(t.Context(), newTestDevice("SN-2", func(d *fleet.Device) { d.ID = "dev_imported1" }), "tester"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("CreateDevice(taken id) = %v, want ErrDuplicate", err)
		}
		if err := s.CreateDevice(t.Context(), newTestDevice("SN-3", func(d *fleet.Device) { d.ID = "dev bad" }), "tester"); err == nil {
			t.Fatal("CreateDevice(id with a space) succeeded")
		}
	})
}

func TestCreateDuplicateSerial(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		first := mustCreate(t, s, newTestDevice("SN-1"))
		dup := newTestDevice("SN-1")
		err := s.CreateDevice(t.Context(), dup, "tester")
		if !errors.Is(err, ErrDuplicate) {
			t.Fatalf("CreateDevice(duplicate) = %v, want ErrDuplicate", err)
		}
		for _, part := range []string{"f1", "m1", "SN-1"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not name %s", err, part)
			}
		}
		if dup.ID != "" {
			t.Errorf("failed create assigned id %q to the caller's device", dup.ID)
		}
		mustEqual(t, "devices", countAll(t, s, "devices"), 1)
		mustEqual(t, "events", countAll(t, s, "events"), 1)
		// The same serial under another model or factory is another device.
		mustCreate(t, s, newTestDevice("SN-1", func(d *fleet.Device) { d.Identity.Model = "m2" }))
		mustCreate(t, s, newTestDevice("SN-1", func(d *fleet.Device) { d.Identity.Factory = "f2" }))
		_ = first
	})
}

func TestCreateInvalidWritesNothing(t *testing.T) {
	lat := 10.0
	cases := []struct {
		name  string
		mod   func(*fleet.Device)
		field string
	}{
		{"no serial", func(d *fleet.Device) { d.Identity.Serial = "" }, "identity.serial"},
		{"serial with space", func(d *fleet.Device) { d.Identity.Serial = "SN 1" }, "identity.serial"},
		{"no factory", func(d *fleet.Device) { d.Identity.Factory = "" }, "identity.factory"},
		{"unknown state", func(d *fleet.Device) { d.Lifecycle.State = "flying" }, "lifecycle.state"},
		{"bad BOM", withBOM(`{"bomFormat":"SPDX"}`), "manufacturing.bom"},
		{"BOM not JSON", withBOM(`{`), "manufacturing.bom"},
		{"lat without lon", func(d *fleet.Device) { d.Inventory.Location.Lat = &lat }, "inventory.location"},
		{"bad group", func(d *fleet.Device) { d.Inventory.Groups = []string{"a b"} }, "inventory.groups"},
		{"bad compliance", func(d *fleet.Device) { d.Compliance = []fleet.ComplianceItem{{Standard: "x", Status: "maybe"}} }, "compliance[0].status"},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := s.CreateDevice(t.Context(), newTestDevice("SN-1", tc.mod), "tester")
				var fe *fleet.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("CreateDevice = %v, want a *fleet.FieldError", err)
				}
				mustEqual(t, "field", fe.Field, tc.field)
			})
		}
		for _, table := range []string{"devices", "events", "device_groups", "device_tags", "device_attrs", "bom_components"} {
			mustEqual(t, table+" rows", countAll(t, s, table), 0)
		}
	})
}

func TestUpdateDevice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))

		got, err := s.UpdateDevice(ctx, d.ID, 1, "op", func(d *fleet.Device) (*Change, error) {
			if err := fleet.Transition(d.Lifecycle.State, fleet.StatePending); err != nil {
				return nil, err
			}
			d.Lifecycle.State = fleet.StatePending
			return &Change{Type: fleet.EventStateChanged, Data: map[string]string{"to": "pending"}}, nil
		})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		mustEqual(t, "version", got.Version, int64(2))
		mustEqual(t, "state", got.Lifecycle.State, fleet.StatePending)
		if !got.UpdatedAt.After(d.UpdatedAt) && !got.UpdatedAt.Equal(d.UpdatedAt) {
			t.Errorf("UpdatedAt went back: %v < %v", got.UpdatedAt, d.UpdatedAt)
		}
		mustEqual(t, "CreatedAt kept", got.CreatedAt.Equal(d.CreatedAt), true)
		stored, _ := s.GetDevice(ctx, d.ID)
		sameDevice(t, stored, got)
		evs := mustVerify(t, s, d.ID, 2)
		mustEqual(t, "event type", evs[1].Type, fleet.EventStateChanged)
		mustEqual(t, "event actor", evs[1].Actor, "op")
		mustEqual(t, "event data", string(evs[1].Data), `{"to":"pending"}`)

		t.Run("version mismatch", func(t *testing.T) {
			_, err := s.UpdateDevice(ctx, d.ID, 1, "op", func(d *fleet.Device) (*Change, error) {
				t.Fatal("fn called despite the version mismatch")
				return nil, nil
			})
			if !errors.Is(err, ErrVersionMismatch) {
				t.Fatalf("UpdateDevice(stale version) = %v, want ErrVersionMismatch", err)
			}
		})
		t.Run("fn error rolls back and is returned unchanged", func(t *testing.T) {
			_, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
				d.Inventory.Owner = "mallory"
				return nil, fleet.Transition(d.Lifecycle.State, fleet.StateDisposed)
			})
			var te *fleet.TransitionError
			if !errors.As(err, &te) {
				t.Fatalf("UpdateDevice = %v, want the *fleet.TransitionError of fn", err)
			}
			mustEqual(t, "error from", te.From, fleet.StatePending)
		})
		t.Run("nil change writes nothing", func(t *testing.T) {
			got, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
				d.Inventory.Owner = "mallory" // discarded: no change reported
				return nil, nil
			})
			if err != nil {
				t.Fatalf("UpdateDevice: %v", err)
			}
			mustEqual(t, "version", got.Version, int64(2))
			mustEqual(t, "owner", got.Inventory.Owner, "acme")
		})
		t.Run("validation failure", func(t *testing.T) {
			_, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
				d.Inventory.Groups = append(d.Inventory.Groups, "not valid")
				return &Change{Type: fleet.EventUpdated}, nil
			})
			var fe *fleet.FieldError
			if !errors.As(err, &fe) || fe.Field != "inventory.groups" {
				t.Fatalf("UpdateDevice = %v, want a FieldError on inventory.groups", err)
			}
		})
		t.Run("unknown device", func(t *testing.T) {
			_, err := s.UpdateDevice(ctx, "dev_nope", 0, "op", func(d *fleet.Device) (*Change, error) { return &Change{}, nil })
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("UpdateDevice(unknown) = %v, want ErrNotFound", err)
			}
		})
		t.Run("id and creation time are not fn's", func(t *testing.T) {
			got, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
				d.ID = "dev_other"
				d.CreatedAt = time.Unix(0, 0)
				d.Version = 99
				return &Change{}, nil
			})
			if err != nil {
				t.Fatalf("UpdateDevice: %v", err)
			}
			mustEqual(t, "id", got.ID, d.ID)
			mustEqual(t, "version", got.Version, int64(3))
			mustEqual(t, "CreatedAt kept", got.CreatedAt.Equal(d.CreatedAt), true)
			evs := mustVerify(t, s, d.ID, 3)
			mustEqual(t, "default event type", evs[2].Type, fleet.EventUpdated)
		})
		// Only the successful updates left a trace.
		stored, _ = s.GetDevice(ctx, d.ID)
		mustEqual(t, "final version", stored.Version, int64(3))
		mustEqual(t, "final owner", stored.Inventory.Owner, "acme")
		mustEqual(t, "final groups", stored.Inventory.Groups, []string{"g1"})
	})
}

// TestUpdateIsAtomic checks that the device write and its event commit
// together: when the event cannot be written, the device is unchanged.
func TestUpdateIsAtomic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		regroup := func(data any) func(*fleet.Device) (*Change, error) {
			return func(d *fleet.Device) (*Change, error) {
				d.Inventory.Groups = []string{"g2"}
				d.Attributes["fw"] = "2.0"
				return &Change{Type: fleet.EventUpdated, Data: data}, nil
			}
		}
		unchanged := func(t *testing.T) {
			t.Helper()
			got, err := s.GetDevice(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameDevice(t, got, d)
			byGroup, _, _ := s.ListDevices(ctx, DeviceFilter{Group: "g1"}, "", 0)
			mustEqual(t, "g1 members", serials(byGroup), []string{"SN-1"})
			byNew, _, _ := s.ListDevices(ctx, DeviceFilter{Group: "g2"}, "", 0)
			mustEqual(t, "g2 members", len(byNew), 0)
			mustVerify(t, s, d.ID, 1)
		}

		t.Run("event data cannot be marshalled", func(t *testing.T) {
			if _, err := s.UpdateDevice(ctx, d.ID, 0, "op", regroup(make(chan int))); err == nil {
				t.Fatal("UpdateDevice with unmarshallable data succeeded")
			}
			unchanged(t)
		})
		t.Run("event data is not JSON", func(t *testing.T) {
			if _, err := s.UpdateDevice(ctx, d.ID, 0, "op", regroup(json.RawMessage("{nope"))); err == nil {
				t.Fatal("UpdateDevice with raw non-JSON data succeeded")
			}
			unchanged(t)
		})
		t.Run("event insert fails after the device row was written", func(t *testing.T) {
			// Occupy the slot the next event needs; the update writes the
			// devices row and side tables first, then fails on the event.
			if _, err := s.DB().ExecContext(ctx, s.d.rebind(`INSERT INTO events (subject, seq, type, actor, at, data, prev_hash, hash)
				VALUES (?, 2, 'squatter', 'test', ?, NULL, '', '')`), d.ID, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateDevice(ctx, d.ID, 0, "op", regroup(nil)); err == nil {
				t.Fatal("UpdateDevice succeeded although its event could not be written")
			}
			if _, err := s.DB().ExecContext(ctx, s.d.rebind("DELETE FROM events WHERE subject = ? AND seq = 2"), d.ID); err != nil {
				t.Fatal(err)
			}
			unchanged(t)
		})
	})
}

func TestConcurrentUpdates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1"))
		const writers = 8
		versions := make(chan int64, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				got, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
					d.Maintenance = append(d.Maintenance, fleet.MaintenanceItem{Problem: "p", At: time.Now()})
					return &Change{Type: fleet.EventMaintenance, Data: map[string]int{"writer": i}}, nil
				})
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				versions <- got.Version
			})
		}
		wg.Wait()
		close(versions)
		seen := map[int64]bool{}
		for v := range versions {
			seen[v] = true
		}
		for v := int64(2); v <= writers+1; v++ {
			if !seen[v] {
				t.Errorf("no writer got version %d (saw %v)", v, seen)
			}
		}
		got, _ := s.GetDevice(ctx, d.ID)
		mustEqual(t, "version", got.Version, int64(writers+1))
		mustEqual(t, "maintenance items", len(got.Maintenance), writers)
		mustVerify(t, s, d.ID, writers+1)
	})
}

// TestSideTablesFollowUpdates checks that every indexed field is re-indexed
// when an update changes it.
func TestSideTablesFollowUpdates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := mustCreate(t, s, newTestDevice("SN-1", withBOM(testBOM), func(d *fleet.Device) {
			d.Inventory.Groups = []string{"g1", "g2"}
			d.Inventory.Tags = []string{"t1", "t2"}
			d.Attributes = map[string]string{"fw": "1.0", "region": "eu"}
		}))
		_, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
			d.Inventory.Groups = []string{"g2", "g3"}
			d.Inventory.Tags = []string{"t2"}
			d.Attributes = map[string]string{"fw": "2.0", "region": "eu", "site": "berlin"}
			d.Manufacturing.BOM = json.RawMessage(espBOM)
			d.Inventory.Owner = "globex"
			d.Identity.Batch = "b9"
			d.Lifecycle.State = fleet.StatePending
			return &Change{Type: fleet.EventUpdated}, nil
		})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		cases := []struct {
			f     DeviceFilter
			found bool
		}{
			{DeviceFilter{Group: "g1"}, false},
			{DeviceFilter{Group: "g2"}, true},
			{DeviceFilter{Group: "g3"}, true},
			{DeviceFilter{Tag: "t1"}, false},
			{DeviceFilter{Tag: "t2"}, true},
			{DeviceFilter{Attributes: map[string]string{"fw": "1.0"}}, false},
			{DeviceFilter{Attributes: map[string]string{"fw": "2.0", "region": "eu", "site": "berlin"}}, true},
			{DeviceFilter{Component: "openssl"}, false},
			{DeviceFilter{Component: "esp32"}, true},
			{DeviceFilter{Owner: "acme"}, false},
			{DeviceFilter{Owner: "globex"}, true},
			{DeviceFilter{Batch: "b1"}, false},
			{DeviceFilter{Batch: "b9"}, true},
			{DeviceFilter{State: fleet.StateManufactured}, false},
			{DeviceFilter{State: fleet.StatePending}, true},
		}
		for _, tc := range cases {
			got, _, err := s.ListDevices(ctx, tc.f, "", 0)
			if err != nil {
				t.Fatalf("ListDevices(%+v): %v", tc.f, err)
			}
			if (len(got) == 1) != tc.found {
				t.Errorf("ListDevices(%+v) found %d, want found=%v", tc.f, len(got), tc.found)
			}
		}
		comps, err := s.DeviceComponents(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "components", comps, []fleet.Component{{Type: "device", Name: "esp32", Version: "s3"}})
		mustEqual(t, "group rows", countRows(t, s, "device_groups", "device_id", d.ID), 2)
		mustEqual(t, "attr rows", countRows(t, s, "device_attrs", "device_id", d.ID), 3)
	})
}

func TestDeviceComponentsWithoutBOM(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		d := mustCreate(t, s, newTestDevice("SN-1"))
		comps, err := s.DeviceComponents(t.Context(), d.ID)
		if err != nil || comps == nil || len(comps) != 0 {
			t.Fatalf("DeviceComponents(no BOM) = %v, %v; want empty", comps, err)
		}
		if _, err := s.DeviceComponents(t.Context(), "dev_nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("DeviceComponents(unknown) = %v, want ErrNotFound", err)
		}
	})
}
