package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

func TestRegions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		eu := &Region{Name: "eu-west", ProvisionURL: "https://eu.example:9443", MQTTURL: "mqtts://eu.example:8883",
			ProbeURL: "https://eu.example:9443/v1/probe", Location: &Coordinates{Lat: 48.85, Lon: 2.35}, Weight: 3, Status: RegionEnabled}
		if err := s.CreateRegion(ctx, eu, "admin"); err != nil {
			t.Fatalf("CreateRegion: %v", err)
		}
		us := &Region{Name: "us-east", ProvisionURL: "https://us.example:9443", MQTTURL: "mqtts://us.example:8883",
			ProbeURL: "https://us.example:9443/v1/probe", Weight: 1, Status: RegionEnabled}
		if err := s.CreateRegion(ctx, us, "admin"); err != nil {
			t.Fatal(err)
		}
		if eu.Version != 1 || eu.CreatedAt.IsZero() {
			t.Errorf("CreateRegion left %+v", eu)
		}
		if err := s.CreateRegion(ctx, &Region{Name: "eu-west", Status: RegionEnabled}, "admin"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateRegion(taken name) = %v, want ErrDuplicate", err)
		}

		got, err := s.Region(ctx, "eu-west")
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "read back", *got, *eu)
		// A region without a location reads back without one, not at 0,0.
		if got, err := s.Region(ctx, "us-east"); err != nil || got.Location != nil {
			t.Errorf("us-east = %+v, %v; want no location", got, err)
		}
		if _, err := s.Region(ctx, "nowhere"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Region(unknown) = %v, want ErrNotFound", err)
		}

		up, err := s.UpdateRegion(ctx, "eu-west", "operator", func(g *Region) error {
			g.Status, g.Location, g.Name = RegionDraining, nil, "renamed"
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateRegion: %v", err)
		}
		if up.Name != "eu-west" || up.Version != 2 || up.Status != RegionDraining || up.Location != nil {
			t.Errorf("updated = %+v", up)
		}
		boom := errors.New("no")
		if _, err := s.UpdateRegion(ctx, "eu-west", "operator", func(g *Region) error { g.Weight = 99; return boom }); !errors.Is(err, boom) {
			t.Errorf("UpdateRegion(fn fails) = %v", err)
		}
		if got, _ := s.Region(ctx, "eu-west"); got.Weight != 3 || got.Version != 2 {
			t.Errorf("a failed update changed the region: %+v", got)
		}
		if _, err := s.UpdateRegion(ctx, "nowhere", "operator", func(*Region) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateRegion(unknown) = %v, want ErrNotFound", err)
		}

		list, err := s.ListRegions(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "eu-west" || list[1].Name != "us-east" {
			t.Fatalf("ListRegions = %+v, %v", list, err)
		}
		if err := s.DeleteRegion(ctx, "us-east", "admin"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRegion(ctx, "us-east", "admin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
		events, err := s.History(ctx, fleet.FleetSubject)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range events {
			types = append(types, e.Type)
		}
		mustEqual(t, "audit log", types, []string{EventRegionCreated, EventRegionCreated, EventRegionUpdated, EventRegionDeleted})
	})
}

// testRegion is an enabled region called name.
func testRegion(name string) *Region {
	return &Region{Name: name, ProvisionURL: "https://" + name + ".example:9443", MQTTURL: "mqtts://" + name + ".example:8883",
		ProbeURL: "https://" + name + ".example:9443/v1/probe", Weight: 1, Status: RegionEnabled}
}

// fleetTypes lists the types of the fleet audit log's events.
func fleetTypes(t *testing.T, s *Store) []string {
	t.Helper()
	events, err := s.History(t.Context(), fleet.FleetSubject)
	if err != nil {
		t.Fatal(err)
	}
	types := []string{}
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}

// TestDeleteRegion: a region devices still name as home is refused with
// their count and nothing changes; an empty one goes, its CA retires in
// the same transaction (no longer active, still trusted until it expires)
// with the CA named in region.deleted; the name can be used again, with a
// new CA.
func TestDeleteRegion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		eu := testRegion("eu")
		first := testCA(RegionalCAPurpose, "")
		if err := s.CreateRegionWithCA(ctx, eu, first, "admin"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRegion(ctx, testRegion("us"), "admin"); err != nil {
			t.Fatal(err)
		}
		d := mustCreate(t, s, newTestDevice("SN-1", func(d *fleet.Device) { d.Attributes[AttrRegionHome] = "eu" }))
		mustCreate(t, s, newTestDevice("SN-2", func(d *fleet.Device) { d.Attributes[AttrRegionHome] = "eu-2" }))
		mustCreate(t, s, newTestDevice("SN-3", func(d *fleet.Device) { d.Attributes["other"] = "eu" }))
		before := fleetTypes(t, s)

		err := s.DeleteRegion(ctx, "eu", "admin")
		var inUse *RegionInUseError
		if !errors.Is(err, ErrRegionInUse) || !errors.As(err, &inUse) || inUse.Devices != 1 || inUse.Region != "eu" {
			t.Fatalf("DeleteRegion(homed) = %v, want a RegionInUseError for 1 device", err)
		}
		if _, err := s.Region(ctx, "eu"); err != nil {
			t.Errorf("a refused delete removed the region: %v", err)
		}
		if got, _ := s.GetCA(ctx, first.ID); got.Status != CAActive {
			t.Errorf("a refused delete changed the CA: %+v", got)
		}
		mustEqual(t, "audit log after the refusal", fleetTypes(t, s), before)

		// Drained (here by hand), the region goes and its CA retires.
		if _, err := s.UpdateDevice(ctx, d.ID, 0, "test", func(d *fleet.Device) (*Change, error) {
			d.Attributes[AttrRegionHome] = "us"
			return &Change{Type: "test.moved"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRegion(ctx, "eu", "admin"); err != nil {
			t.Fatalf("DeleteRegion(empty) = %v", err)
		}
		if _, err := s.Region(ctx, "eu"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted region reads %v", err)
		}
		old, err := s.GetCA(ctx, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if old.Status != CARetiring || old.RetireAt == nil || !old.RetireAt.Equal(old.NotAfter) {
			t.Errorf("CA of the deleted region = %s until %v, want retiring until its expiry %v", old.Status, old.RetireAt, old.NotAfter)
		}
		if active, _ := s.ListCAs(ctx, CAFilter{Purpose: RegionalCAPurpose, Status: CAActive}); len(active) != 0 {
			t.Errorf("active regional CAs after the delete: %+v", active)
		}
		events, _ := s.History(ctx, fleet.FleetSubject)
		last := events[len(events)-1]
		if last.Type != EventRegionDeleted || !strings.Contains(string(last.Data), `"ca":"`+first.ID+`"`) || last.Actor != "admin" {
			t.Errorf("last audit event = %s by %s %s, want %s naming CA %s", last.Type, last.Actor, last.Data, EventRegionDeleted, first.ID)
		}
		mustVerify(t, s, fleet.FleetSubject, len(events))

		// The name again, with a CA of its own: a new one.
		second := testCA(RegionalCAPurpose, "")
		second.SubjectKeyID = "ef01"
		if err := s.CreateRegionWithCA(ctx, testRegion("eu"), second, "admin"); err != nil {
			t.Fatalf("re-create eu with a CA: %v", err)
		}
		active, err := s.ListCAs(ctx, CAFilter{Purpose: RegionalCAPurpose, Factory: "eu", Status: CAActive})
		if err != nil || len(active) != 1 || active[0].ID != second.ID || active[0].ID == first.ID {
			t.Errorf("active CA of the new eu = %+v, %v; want only %s", active, err, second.ID)
		}

		// A region without a CA goes too; unknown ones are ErrNotFound.
		if err := s.DeleteRegion(ctx, "us", "admin"); err == nil {
			t.Errorf("us is home to SN-1 now, yet it was deleted")
		}
		if err := s.DeleteRegion(ctx, "mars", "admin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteRegion(unknown) = %v, want ErrNotFound", err)
		}
	})
}

// TestCreateRegionWithCA: the region and its CA are one write. When the CA
// cannot be stored (a left-over active CA for the name, a duplicate CA
// id, a CA that is not a regional one) or the region cannot (a taken
// name), neither is, and the audit log does not grow.
func TestCreateRegionWithCA(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		eu, euCA := testRegion("eu"), testCA(RegionalCAPurpose, "ignored")
		if err := s.CreateRegionWithCA(ctx, eu, euCA, "admin"); err != nil {
			t.Fatalf("CreateRegionWithCA: %v", err)
		}
		if eu.Version != 1 || eu.CreatedAt.IsZero() || euCA.ID == "" || euCA.Factory != "eu" || euCA.Status != CAActive {
			t.Fatalf("CreateRegionWithCA left %+v and %+v", eu, euCA)
		}
		if got, err := s.Region(ctx, "eu"); err != nil || got.Version != 1 {
			t.Fatalf("stored region = %+v, %v", got, err)
		}
		if got, err := s.ListCAs(ctx, CAFilter{Purpose: RegionalCAPurpose, Factory: "eu"}); err != nil || len(got) != 1 || got[0].ID != euCA.ID {
			t.Fatalf("stored CA = %+v, %v", got, err)
		}
		mustEqual(t, "audit log", fleetTypes(t, s), []string{EventRegionCreated, EventCACreated})

		// The second write fails: a CA left active under the name.
		orphan := testCA(RegionalCAPurpose, "ap")
		if err := s.InsertCA(ctx, orphan, "admin"); err != nil {
			t.Fatal(err)
		}
		before := fleetTypes(t, s)
		dupID := testCA(RegionalCAPurpose, "")
		dupID.ID = euCA.ID
		for _, tc := range []struct {
			name   string
			region string
			ca     *CA
			want   error
		}{
			{"active CA left for the name", "ap", testCA(RegionalCAPurpose, ""), ErrDuplicate},
			{"CA id taken", "sa", dupID, ErrDuplicate},
			{"taken region name", "eu", testCA(RegionalCAPurpose, ""), ErrDuplicate},
			{"not a regional CA", "af", testCA("operational", ""), nil},
			{"CA without certificate", "me", &CA{Purpose: RegionalCAPurpose}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.CreateRegionWithCA(ctx, testRegion(tc.region), tc.ca, "admin")
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("CreateRegionWithCA = %v, want an error (%v)", err, tc.want)
				}
				if tc.region != "eu" {
					if _, err := s.Region(ctx, tc.region); !errors.Is(err, ErrNotFound) {
						t.Errorf("region %s stored without its CA: %v", tc.region, err)
					}
				}
				cas, _ := s.ListCAs(ctx, CAFilter{Purpose: RegionalCAPurpose})
				if len(cas) != 2 {
					t.Errorf("regional CAs = %d, want the 2 from before", len(cas))
				}
				mustEqual(t, "audit log", fleetTypes(t, s), before)
			})
		}
	})
}

// TestRegionDevicesUseIndex: the queries that find a region's devices read
// device_attrs' primary key (key, value, device_id), never the devices
// table from end to end: regionHomedQuery as the store runs it, and the
// attribute filter of CountDevices and ListDevices as list.go and count.go
// build it.
func TestRegionDevicesUseIndex(t *testing.T) {
	queries := map[string]string{
		"regionHomedQuery": regionHomedQuery,
		"CountDevices":     "SELECT COUNT(*) FROM devices d WHERE d.id IN (SELECT y.device_id FROM device_attrs y WHERE y.key = ? AND y.value = ?)",
		"ListDevices": "SELECT d.doc, b.doc FROM device_attrs x CROSS JOIN devices d LEFT JOIN boms b ON b.sha256 = d.bom_sha256" +
			" WHERE x.key = ? AND x.value >= ? AND x.value <= ? AND d.id = x.device_id ORDER BY x.key, x.value, x.device_id LIMIT 100",
	}
	args := map[string][]any{
		"regionHomedQuery": {AttrRegionHome, "eu"},
		"CountDevices":     {AttrRegionHome, "eu"},
		"ListDevices":      {AttrRegionHome, "eu", "eu"},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for i := range 50 {
			home := []string{"eu", "us"}[i%2]
			mustCreate(t, s, newTestDevice(fmt.Sprintf("SN-%d", i), func(d *fleet.Device) { d.Attributes[AttrRegionHome] = home }))
		}
		if n, err := countHomed(ctx, s, "eu"); err != nil || n != 25 {
			t.Fatalf("countHomed(eu) = %d, %v; want 25", n, err)
		}
		for name, q := range queries {
			plan := explain(t, s, q, args[name]...)
			t.Logf("%s on %s:\n%s", name, s.Backend(), plan)
			var uses bool
			if s.Backend() == "sqlite" {
				uses = strings.Contains(plan, "SEARCH device_attrs") || strings.Contains(plan, "SEARCH x") || strings.Contains(plan, "SEARCH y")
				uses = uses && strings.Contains(plan, "PRIMARY KEY (key=? AND value")
				uses = uses && !strings.Contains(plan, "SCAN d") && !strings.Contains(plan, "SCAN devices")
			} else {
				uses = strings.Contains(plan, "device_attrs_pkey") && !strings.Contains(plan, "Seq Scan on devices")
			}
			if !uses {
				t.Errorf("%s does not find the region's devices through device_attrs' primary key on %s:\n%s", name, s.Backend(), plan)
			}
		}
	})
}

// explain returns the plan of q. On PostgreSQL sequential scans are
// priced out, as they are not on tables of production size, so the plan
// shows whether an index can serve q at all.
func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	ctx := t.Context()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	prefix := "EXPLAIN QUERY PLAN "
	if s.Backend() == "postgres" {
		prefix = "EXPLAIN "
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, s.d.rebind(prefix+q), args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprint(vals[len(vals)-1]))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
