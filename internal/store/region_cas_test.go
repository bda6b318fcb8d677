package store

import (
	"errors"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestInsertRegionCA: a region's CA is stored with the region's name in
// its factory column and ca.created in the audit log; a second active CA
// for the region, or a CA for an unknown region, is refused with nothing
// written.
func TestInsertRegionCA(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		eu := &Region{Name: "eu-west", ProvisionURL: "https://eu.example:9443", MQTTURL: "mqtts://eu.example:8883",
			ProbeURL: "https://eu.example:9443/v1/probe", Weight: 1, Status: RegionEnabled}
		if err := s.CreateRegion(ctx, eu, "admin"); err != nil {
			t.Fatal(err)
		}
		events := func() int {
			ev, err := s.History(ctx, fleet.FleetSubject)
			if err != nil {
				t.Fatal(err)
			}
			return len(ev)
		}
		before := events()
		ca := testCA("regional", "")
		if err := s.InsertRegionCA(ctx, "eu-west", ca, "admin"); err != nil {
			t.Fatalf("InsertRegionCA: %v", err)
		}
		if ca.ID == "" || ca.Factory != "eu-west" || ca.Status != CAActive {
			t.Fatalf("InsertRegionCA left %+v", ca)
		}
		got, err := s.ListCAs(ctx, CAFilter{Purpose: "regional", Factory: "eu-west"})
		if err != nil || len(got) != 1 || got[0].ID != ca.ID {
			t.Fatalf("regional CAs of eu-west = %+v, %v", got, err)
		}
		ev, _ := s.History(ctx, fleet.FleetSubject)
		if n := events(); n != before+1 || ev[len(ev)-1].Type != EventCACreated {
			t.Fatalf("audit log grew by %d, last %s; want one %s", n-before, ev[len(ev)-1].Type, EventCACreated)
		}

		if err := s.InsertRegionCA(ctx, "eu-west", testCA("regional", ""), "admin"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("second CA of eu-west = %v, want ErrDuplicate", err)
		}
		if err := s.InsertRegionCA(ctx, "nowhere", testCA("regional", ""), "admin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CA of an unknown region = %v, want ErrNotFound", err)
		}
		all, err := s.ListCAs(ctx, CAFilter{Purpose: "regional"})
		if err != nil || len(all) != 1 {
			t.Errorf("regional CAs after the refusals = %d (%v), want 1", len(all), err)
		}
		if n := events(); n != before+1 {
			t.Errorf("refusals wrote %d audit events", n-before-1)
		}
	})
}

// TestMigrationRetiresOrphanRegionCAs: migration 0012 retires the active
// CAs of regions deleted before deletions retired them (until their own
// expiry, as a deletion does now) and leaves those of live regions alone.
func TestMigrationRetiresOrphanRegionCAs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if err := s.CreateRegionWithCA(ctx, &Region{Name: "eu", ProvisionURL: "https://eu.example", MQTTURL: "mqtts://eu.example",
			ProbeURL: "https://eu.example/v1/probe", Weight: 1, Status: RegionEnabled}, testCA(RegionalCAPurpose, ""), "admin"); err != nil {
			t.Fatal(err)
		}
		// What the old DeleteRegion left: a CA active for a region gone.
		orphan := testCA(RegionalCAPurpose, "gone")
		if err := s.InsertCA(ctx, orphan, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, s.d.rebind("DELETE FROM schema_migrations WHERE version = ?"), 12); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		got, err := s.GetCA(ctx, orphan.ID)
		if err != nil || got.Status != CARetiring || got.RetireAt == nil || !got.RetireAt.Equal(got.NotAfter) {
			t.Errorf("orphan CA after 0012 = %+v, %v; want retiring until its expiry", got, err)
		}
		if live, err := s.ListCAs(ctx, CAFilter{Purpose: RegionalCAPurpose, Factory: "eu", Status: CAActive}); err != nil || len(live) != 1 {
			t.Errorf("CA of the live region after 0012 = %+v, %v; want it active", live, err)
		}
	})
}
