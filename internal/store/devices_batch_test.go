package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestCreateDevicesIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		// More than copyThreshold, so PostgreSQL takes the COPY path.
		var first []*fleet.Device
		for i := range 300 {
			first = append(first, newTestDevice(fmt.Sprintf("SN-%04d", i), withBOM(testBOM)))
		}
		inserted, err := s.CreateDevices(ctx, first, "line-1")
		if err != nil {
			t.Fatalf("CreateDevices: %v", err)
		}
		for i, ok := range inserted {
			if !ok {
				t.Fatalf("device %d not inserted on the first run", i)
			}
			if !strings.HasPrefix(first[i].ID, "dev_") || first[i].Version != 1 {
				t.Fatalf("device %d came back without id or version: %+v", i, first[i])
			}
		}

		// A re-run of the manifest with new rows and a repeated row.
		again := []*fleet.Device{
			newTestDevice("SN-0000"),
			newTestDevice("SN-9000"),
			newTestDevice("SN-0001"),
			newTestDevice("SN-9000"),
		}
		inserted, err = s.CreateDevices(ctx, again, "line-1")
		if err != nil {
			t.Fatalf("CreateDevices again: %v", err)
		}
		mustEqual(t, "inserted", inserted, []bool{false, true, false, false})
		mustEqual(t, "stored id of SN-0000", again[0].ID, first[0].ID)
		mustEqual(t, "stored id of SN-0001", again[2].ID, first[1].ID)
		mustEqual(t, "repeat gets the new id", again[3].ID, again[1].ID)
		// The stored record, BOM included, replaced the input.
		mustEqual(t, "stored BOM", string(again[0].Manufacturing.BOM), testBOM)
		again[3].Attributes["x"] = "y"
		if _, aliased := again[1].Attributes["x"]; aliased {
			t.Error("repeated entries share one record")
		}

		mustEqual(t, "devices", countAll(t, s, "devices"), 301)
		mustEqual(t, "events", countAll(t, s, "events"), 301)
		mustEqual(t, "component rows", countAll(t, s, "bom_components"), 300*3)
		mustVerify(t, s, first[0].ID, 1)
		mustVerify(t, s, again[1].ID, 1)
		comps, err := s.DeviceComponents(ctx, first[299].ID)
		if err != nil || len(comps) != 3 {
			t.Fatalf("DeviceComponents = %v, %v", comps, err)
		}
		byComp, _, _ := s.ListDevices(ctx, DeviceFilter{Component: "bootloader"}, "", 1000)
		mustEqual(t, "devices with bootloader", len(byComp), 300)
	})
}

func TestCreateDevicesValidationNamesRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ds := []*fleet.Device{newTestDevice("SN-1"), newTestDevice("SN-2"), newTestDevice("SN 3"), newTestDevice("SN-4")}
		_, err := s.CreateDevices(t.Context(), ds, "line-1")
		var fe *fleet.FieldError
		if !errors.As(err, &fe) || fe.Field != "identity.serial" {
			t.Fatalf("CreateDevices = %v, want a FieldError on identity.serial", err)
		}
		if !strings.Contains(err.Error(), "devices[2]") {
			t.Errorf("error %q does not name row 2", err)
		}
		mustEqual(t, "devices", countAll(t, s, "devices"), 0)
		mustEqual(t, "events", countAll(t, s, "events"), 0)
		if ds[0].ID != "" {
			t.Error("a failed batch assigned ids")
		}
		if _, err := s.CreateDevices(t.Context(), []*fleet.Device{newTestDevice("SN-1"), nil}, "line-1"); err == nil || !strings.Contains(err.Error(), "devices[1]") {
			t.Errorf("CreateDevices with a nil entry = %v, want an error naming devices[1]", err)
		}
		inserted, err := s.CreateDevices(t.Context(), nil, "line-1")
		if err != nil || len(inserted) != 0 {
			t.Errorf("CreateDevices(empty) = %v, %v", inserted, err)
		}
	})
}

// TestCreateDevicesConcurrentOverlap runs overlapping batches at once: every
// device ends up registered once, and each call learns every id.
func TestCreateDevicesConcurrentOverlap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		const callers, size = 4, 200
		results := make([][]*fleet.Device, callers)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				var ds []*fleet.Device
				for i := range size {
					ds = append(ds, newTestDevice(fmt.Sprintf("SN-%04d", i+c*size/2)))
				}
				if _, err := s.CreateDevices(t.Context(), ds, "line"); err != nil {
					t.Errorf("caller %d: %v", c, err)
				}
				results[c] = ds
			})
		}
		wg.Wait()
		want := size + (callers-1)*size/2
		mustEqual(t, "devices", countAll(t, s, "devices"), want)
		mustEqual(t, "events", countAll(t, s, "events"), want)
		ids := map[string]string{}
		for _, ds := range results {
			for _, d := range ds {
				if prev, ok := ids[d.Identity.Serial]; ok && prev != d.ID {
					t.Fatalf("serial %s has ids %s and %s", d.Identity.Serial, prev, d.ID)
				}
				ids[d.Identity.Serial] = d.ID
			}
		}
	})
}

func TestChunkBounds(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{1, []int{0, 1}},
		{firstBatchChunk, []int{0, firstBatchChunk}},
		{firstBatchChunk + 1, []int{0, firstBatchChunk, firstBatchChunk + 1}},
		{firstBatchChunk + 2*batchChunk, []int{0, firstBatchChunk, firstBatchChunk + batchChunk, firstBatchChunk + 2*batchChunk}},
	} {
		mustEqual(t, fmt.Sprintf("chunkBounds(%d)", tc.n), chunkBounds(tc.n), tc.want)
	}
}

// TestCreateDevicesLateFailure fails a batch on a device in its third chunk,
// after the first chunks were written inside the transaction: nothing of
// the batch may remain.
func TestCreateDevicesLateFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		bad := firstBatchChunk + batchChunk + 7
		var ds []*fleet.Device
		for i := range bad + 10 {
			ds = append(ds, newTestDevice(fmt.Sprintf("SN-%05d", i)))
		}
		ds[bad].Identity.Model = "no spaces allowed"
		_, err := s.CreateDevices(t.Context(), ds, "line-1")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("devices[%d]", bad)) {
			t.Fatalf("CreateDevices = %v, want an error naming devices[%d]", err, bad)
		}
		for _, table := range []string{"devices", "events", "device_groups", "device_tags", "device_attrs"} {
			mustEqual(t, table+" rows", countAll(t, s, table), 0)
		}
	})
}
