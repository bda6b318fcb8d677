package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

var (
	longOwner = strings.Repeat("o", 300)
	longNote  = strings.Repeat("n", 400)
)

// filterFleet creates 40 devices whose fields vary with their index and
// returns them in id order.
func filterFleet(t *testing.T, s *Store) []*fleet.Device {
	t.Helper()
	states := []fleet.State{fleet.StateManufactured, fleet.StatePending, fleet.StateProvisioned, fleet.StateActive}
	var ds []*fleet.Device
	for i := range 40 {
		d := newTestDevice(fmt.Sprintf("SN-%c-%03d", 'A'+i%3, i), func(d *fleet.Device) {
			d.Identity.Model = fmt.Sprintf("m%d", i%3)
			d.Identity.Factory = fmt.Sprintf("f%d", i%2)
			d.Identity.Batch = ""
			if i%5 != 0 {
				d.Identity.Batch = fmt.Sprintf("b%d", i%4)
			}
			d.Inventory.Owner = ""
			if i%3 != 0 {
				d.Inventory.Owner = fmt.Sprintf("owner%d", i%2)
			}
			if i == 11 {
				d.Inventory.Owner = longOwner
			}
			d.Lifecycle.State = states[i%4]
			d.Inventory.Groups = []string{fmt.Sprintf("g%d", i%3)}
			if i%2 == 0 {
				d.Inventory.Groups = append(d.Inventory.Groups, "all", "all") // repeats are one membership
			}
			d.Inventory.Tags = []string{fmt.Sprintf("t%d", i%5)}
			d.Attributes = map[string]string{"fw": fmt.Sprintf("1.%d", i%3), "region": fmt.Sprintf("r%d", i%2)}
			if i == 7 {
				d.Attributes["note"] = longNote
			}
			switch i % 4 {
			case 0:
				d.Manufacturing.BOM = []byte(testBOM)
			case 1:
				d.Manufacturing.BOM = []byte(espBOM)
			case 2:
				// One component name twice: still one match per device.
				d.Manufacturing.BOM = []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[` +
					`{"type":"device","name":"esp32","version":"s2"},{"type":"device","name":"esp32","version":"s3"}]}`)
			}
		})
		ds = append(ds, d)
	}
	if _, err := s.CreateDevices(t.Context(), ds, "tester"); err != nil {
		t.Fatalf("CreateDevices: %v", err)
	}
	slices.SortFunc(ds, func(a, b *fleet.Device) int { return strings.Compare(a.ID, b.ID) })
	return ds
}

// matches is the filter semantics, written out plainly.
func matches(t *testing.T, d *fleet.Device, f DeviceFilter) bool {
	t.Helper()
	has := func(list []string, v string) bool { return v == "" || slices.Contains(list, v) }
	ok := (f.State == "" || d.Lifecycle.State == f.State) &&
		(f.Model == "" || d.Identity.Model == f.Model) &&
		(f.Factory == "" || d.Identity.Factory == f.Factory) &&
		(f.Batch == "" || d.Identity.Batch == f.Batch) &&
		(f.Owner == "" || d.Inventory.Owner == f.Owner) &&
		strings.HasPrefix(d.Identity.Serial, f.SerialPrefix) &&
		has(d.Inventory.Groups, f.Group) && has(d.Inventory.Tags, f.Tag)
	for k, v := range f.Attributes {
		if got, set := d.Attributes[k]; !set || got != v {
			ok = false
		}
	}
	if f.Component != "" {
		var names []string
		if len(d.Manufacturing.BOM) > 0 {
			comps, err := fleet.ParseBOM(d.Manufacturing.BOM)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range comps {
				names = append(names, c.Name)
			}
		}
		ok = ok && slices.Contains(names, f.Component)
	}
	return ok
}

// testFilters covers every kind of filter, alone and combined, over
// filterFleet: matches and non-matches, long values, repeated memberships.
var testFilters = []DeviceFilter{
	{},
	{State: fleet.StateActive},
	{Model: "m1"},
	{Factory: "f0"},
	{Batch: "b1"},
	{Owner: "owner1"},
	{Owner: longOwner},
	{Group: "g2"},
	{Group: "all"},
	{Tag: "t3"},
	{Attributes: map[string]string{"fw": "1.1"}},
	{Attributes: map[string]string{"fw": "1.1", "region": "r0"}},
	{Attributes: map[string]string{"note": longNote}},
	{Attributes: map[string]string{"note": longNote[1:]}},
	{SerialPrefix: "SN-B"},
	{SerialPrefix: "SN-B-01"},
	{SerialPrefix: "SN-"},
	{Component: "openssl"},
	{Component: "bootloader"}, // nested in the component tree
	{Component: "esp32"},
	{State: fleet.StateActive, Model: "m0", Group: "all", Attributes: map[string]string{"region": "r1"}},
	{Factory: "f1", Batch: "b3", Tag: "t3", SerialPrefix: "SN-A", Component: "esp32"},
	{Group: "nope"},
	{SerialPrefix: "ÄÖ"},
	{SerialPrefix: "SN-Z"},
}

func TestListFilters(t *testing.T) {
	filters := testFilters
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		all := filterFleet(t, s)
		for _, f := range filters {
			t.Run(fmt.Sprintf("%+v", f)[:min(60, len(fmt.Sprintf("%+v", f)))], func(t *testing.T) {
				var want []string
				for _, d := range all {
					if matches(t, d, f) {
						want = append(want, d.Identity.Serial)
					}
				}
				got, next, err := s.ListDevices(ctx, f, "", 0)
				if err != nil {
					t.Fatalf("ListDevices: %v", err)
				}
				if next != "" {
					t.Errorf("next cursor %q on a single page", next)
				}
				if !slices.Equal(serials(got), want) {
					t.Fatalf("ListDevices(%+v)\n got  %v\n want %v", f, serials(got), want)
				}
				// The same filter, three at a time.
				var paged []string
				cursor := ""
				for range 100 {
					page, next, err := s.ListDevices(ctx, f, cursor, 3)
					if err != nil {
						t.Fatalf("ListDevices page: %v", err)
					}
					paged = append(paged, serials(page)...)
					if next == "" {
						break
					}
					cursor = next
				}
				if !slices.Equal(paged, want) {
					t.Fatalf("paged ListDevices(%+v)\n got  %v\n want %v", f, paged, want)
				}
				// Every plan the store may choose gives the same answer,
				// also across pages.
				q, err := newListQuery(f)
				if err != nil {
					t.Fatal(err)
				}
				plans := []string{""}
				for _, term := range q.terms {
					plans = append(plans, term.name)
				}
				for _, by := range plans {
					var got []string
					after := ""
					for range 100 {
						page, resume, err := s.listPage(ctx, q, by, after, 4)
						if err != nil {
							t.Fatalf("listPage by %q: %v", by, err)
						}
						got = append(got, serials(page)...)
						if len(page) == 4 {
							after = page[len(page)-1].ID
						} else if after = resume; after == "" {
							break
						}
					}
					if !slices.Equal(got, want) {
						t.Fatalf("listPage by %q\n got  %v\n want %v", by, got, want)
					}
				}
			})
		}
		t.Run("small probes and scan windows", func(t *testing.T) {
			// Tiny limits make every filter dense and every scan window
			// end early: pages come back short or empty, yet following
			// the cursors still yields every match once, in order.
			defer func(p, w int) { s.probeCap, s.scanWindow = p, w }(s.probeCap, s.scanWindow)
			s.probeCap, s.scanWindow = 2, 3
			for _, f := range filters {
				var want, got []string
				for _, d := range all {
					if matches(t, d, f) {
						want = append(want, d.Identity.Serial)
					}
				}
				cursor := ""
				for range 1000 {
					page, next, err := s.ListDevices(ctx, f, cursor, 2)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, serials(page)...)
					if cursor = next; cursor == "" {
						break
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("ListDevices(%+v) with small windows\n got  %v\n want %v", f, got, want)
				}
				var walked []string
				if err := s.EachDevice(ctx, f, func(d *fleet.Device) error {
					walked = append(walked, d.Identity.Serial)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(walked, want) {
					t.Fatalf("EachDevice(%+v) with small windows\n got  %v\n want %v", f, walked, want)
				}
			}
		})
		t.Run("unknown state", func(t *testing.T) {
			_, _, err := s.ListDevices(ctx, DeviceFilter{State: "actve"}, "", 0)
			var fe *fleet.FieldError
			if !errors.As(err, &fe) || fe.Field != "state" {
				t.Fatalf("ListDevices(unknown state) = %v, want a FieldError on state", err)
			}
		})
	})
}

func TestListPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		var ds []*fleet.Device
		for i := range 1203 {
			ds = append(ds, newTestDevice(fmt.Sprintf("SN-%05d", i)))
		}
		if _, err := s.CreateDevices(ctx, ds, "tester"); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		slices.Sort(ids)

		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := s.ListDevices(ctx, DeviceFilter{}, cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, d := range page {
				got = append(got, d.ID)
			}
			if next == "" {
				mustEqual(t, "last page size", len(page), 3)
				break
			}
			mustEqual(t, "page size", len(page), 100)
			cursor = next
		}
		mustEqual(t, "pages", pages, 13)
		if !slices.Equal(got, ids) {
			t.Fatal("pages skipped, repeated or reordered devices")
		}

		for _, tc := range []struct{ limit, want int }{{0, DefaultPageSize}, {-5, 1}, {1, 1}, {5000, MaxPageSize}} {
			page, _, err := s.ListDevices(ctx, DeviceFilter{}, "", tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, fmt.Sprintf("page size for limit %d", tc.limit), len(page), tc.want)
		}

		// A page that ends exactly at the last device has no next cursor.
		page, next, _ := s.ListDevices(ctx, DeviceFilter{}, "", MaxPageSize)
		page2, next2, _ := s.ListDevices(ctx, DeviceFilter{}, next, 203)
		mustEqual(t, "sizes", []int{len(page), len(page2)}, []int{1000, 203})
		mustEqual(t, "next after the exact end", next2, "")

		enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, bad := range []string{
			"!!!",
			enc("{}"),
			enc(`{"v":2,"after":"dev_x"}`),
			enc(`{"v":1,"after":""}`),
			enc(`{"v":1,"after":"dev x"}`),
			enc(`{"v":1,"after":"dev_x","extra":1}`),
			enc(`{"v":1,"after":"dev_x"} trailing`),
			enc("dev_x"),
			base64.StdEncoding.EncodeToString([]byte(`{"v":1,"after":"dev_x"}`)) + "==",
		} {
			if _, _, err := s.ListDevices(ctx, DeviceFilter{}, bad, 0); !errors.Is(err, ErrBadCursor) {
				t.Errorf("ListDevices(cursor %q) = %v, want ErrBadCursor", bad, err)
			}
		}

		t.Run("EachDevice", func(t *testing.T) {
			var walked []string
			if err := s.EachDevice(ctx, DeviceFilter{Group: "g1"}, func(d *fleet.Device) error {
				walked = append(walked, d.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(walked, ids) {
				t.Fatalf("EachDevice walked %d devices, want %d in order", len(walked), len(ids))
			}
			stop := errors.New("stop")
			n := 0
			err := s.EachDevice(ctx, DeviceFilter{}, func(d *fleet.Device) error {
				n++
				if n == 600 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || n != 600 {
				t.Fatalf("EachDevice stopped with %v after %d, want stop after 600", err, n)
			}
			// fn may write through the store while the walk goes on.
			err = s.EachDevice(ctx, DeviceFilter{SerialPrefix: "SN-0000"}, func(d *fleet.Device) error {
				_, err := s.UpdateDevice(ctx, d.ID, 0, "op", func(d *fleet.Device) (*Change, error) {
					d.Inventory.Tags = []string{"walked"}
					return &Change{}, nil
				})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			walkedTag, _, _ := s.ListDevices(ctx, DeviceFilter{Tag: "walked"}, "", 0)
			mustEqual(t, "updated during walk", len(walkedTag), 10)
		})
	})
}
