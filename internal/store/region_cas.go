package store

import (
	"context"
	"fmt"
)

// InsertRegionCA stores a new CA that belongs to region name (its Factory
// column holds the region's name) in one transaction that first locks the
// region, with ca.created in the fleet audit log. An unknown region is
// ErrNotFound and a region that has an active CA of ca's purpose already is
// ErrDuplicate; either way nothing is written. It sets what InsertCA sets.
func (s *Store) InsertRegionCA(ctx context.Context, name string, ca *CA, actor string) error {
	c := *ca
	c.Factory = name
	return s.insertAuditedCA(ctx, ca, c, actor, func(t *txn) error { return lockRegion(ctx, t, name) })
}

// CreateRegionWithCA stores a new region (as CreateRegion) together with
// its own operational CA (as InsertRegionCA), in one transaction with
// region.created and ca.created in the fleet audit log: a crash or a
// refusal never leaves the region without its CA or the CA without its
// region. The CA's key is generated and put in the key store by the caller
// before; a key left unused by a failed create names a CA id that was never
// stored, and nothing refers to it. A taken region name, or a region name
// that has an active CA already, is ErrDuplicate; either way nothing is
// written. It sets on g what CreateRegion sets and on ca what InsertCA sets.
func (s *Store) CreateRegionWithCA(ctx context.Context, g *Region, ca *CA, actor string) error {
	now := s.clock()
	c := *ca
	c.Factory = g.Name
	if c.Purpose != RegionalCAPurpose {
		return fmt.Errorf("store: a region's own CA has purpose %s, not %q", RegionalCAPurpose, c.Purpose)
	}
	if err := s.prepareCA(&c, now); err != nil {
		return err
	}
	caData, err := caCreatedData(&c)
	if err != nil {
		return err
	}
	r := *g
	r.Version, r.CreatedAt, r.UpdatedAt = 1, now, now
	regionData, err := eventData(regionAudit{Name: r.Name, Status: r.Status, Version: r.Version, CA: c.ID})
	if err != nil {
		return err
	}
	lat, lon := locationArgs(r.Location)
	err = s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO regions ("+regionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.Name, r.ProvisionURL, r.MQTTURL, r.ProbeURL, lat, lon, r.Weight, r.Status, r.Version, now, now); err != nil {
			if t.d.isUniqueViolation(err) {
				return fmt.Errorf("store: region %s exists already: %w", r.Name, ErrDuplicate)
			}
			return fmt.Errorf("store: create region %s: %w", r.Name, err)
		}
		if err := s.appendFleetEvent(ctx, t, EventRegionCreated, actor, regionData); err != nil {
			return err
		}
		return s.insertCACreated(ctx, t, &c, actor, caData)
	})
	if err != nil {
		return err
	}
	*g, *ca = r, c
	return nil
}
