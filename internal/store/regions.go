package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/notify"
)

// Fleet audit log events of regions.
const (
	EventRegionCreated = "region.created"
	EventRegionUpdated = "region.updated"
	EventRegionDeleted = "region.deleted"
)

// Region statuses.
const (
	// RegionEnabled regions get new devices.
	RegionEnabled = "enabled"
	// RegionDraining regions get no new devices, and their devices are
	// moved to other regions.
	RegionDraining = "draining"
	// RegionDisabled regions get nothing and are not in the bootstrap
	// document.
	RegionDisabled = "disabled"
)

// AttrRegionHome is the device attribute that names a device's home
// region (package region calls it AttrHome). Like every attribute it is
// indexed in device_attrs, whose primary key (key, value, device_id)
// finds a region's devices without reading the devices table.
const AttrRegionHome = "muster.region"

// RegionalCAPurpose is the purpose of a region's own operational CA in the
// cas table (ca.PurposeRegional); its factory column holds the region.
const RegionalCAPurpose = "regional"

// ErrRegionInUse means a region is still the home of devices, so it cannot
// be deleted; the error is a *RegionInUseError.
var ErrRegionInUse = errors.New("region is home to devices")

// RegionInUseError refuses to delete a region that is home to devices:
// they must be drained to other regions first.
type RegionInUseError struct {
	Region  string
	Devices int64
}

func (e *RegionInUseError) Error() string {
	return fmt.Sprintf("store: region %s is home to %d devices; drain it first", e.Region, e.Devices)
}

// Is makes errors.Is(err, ErrRegionInUse) hold.
func (e *RegionInUseError) Is(target error) bool { return target == ErrRegionInUse }

// Region is one regional endpoint of a deployment: the URLs devices are
// given and the probe they time. Package region validates and allocates;
// the store keeps the record.
type Region struct {
	Name string `json:"name"`
	// ProvisionURL is the base URL of the region's device listener,
	// MQTTURL its gateway (mqtts://host:port), ProbeURL what devices time
	// (https://host:port/v1/probe on the device listener).
	ProvisionURL string `json:"provisionUrl"`
	MQTTURL      string `json:"mqttUrl"`
	ProbeURL     string `json:"probeUrl"`
	// Location is where the region is, for the geo policy; nil when not
	// given.
	Location *Coordinates `json:"location,omitempty"`
	// Weight is the region's share under the weighted policy; 0 takes
	// none.
	Weight    int       `json:"weight"`
	Status    string    `json:"status"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Coordinates are a point on the earth in decimal degrees (WGS 84).
type Coordinates struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// regionAudit is what the fleet audit log records about a region change.
type regionAudit struct {
	Name    string `json:"name"`
	Status  string `json:"status,omitempty"`
	Version int64  `json:"version,omitempty"`
	// CA is the region's own operational CA created with it (region
	// created) or retired with it (region deleted).
	CA string `json:"ca,omitempty"`
}

const regionCols = "name, provision_url, mqtt_url, probe_url, latitude, longitude, weight, status, version, created_at, updated_at"

func scanRegion(r scanner) (*Region, error) {
	var g Region
	var lat, lon sql.NullFloat64
	if err := r.Scan(&g.Name, &g.ProvisionURL, &g.MQTTURL, &g.ProbeURL, &lat, &lon, &g.Weight, &g.Status, &g.Version, &g.CreatedAt, &g.UpdatedAt); err != nil {
		return nil, err
	}
	if lat.Valid && lon.Valid {
		g.Location = &Coordinates{Lat: lat.Float64, Lon: lon.Float64}
	}
	g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	return &g, nil
}

// locationArgs are the latitude and longitude columns of l (NULL for nil).
func locationArgs(l *Coordinates) (lat, lon sql.NullFloat64) {
	if l == nil {
		return
	}
	return sql.NullFloat64{Float64: l.Lat, Valid: true}, sql.NullFloat64{Float64: l.Lon, Valid: true}
}

// CreateRegion stores a new region (version 1) and records it in the fleet
// audit log; a taken name is ErrDuplicate. The caller validates it.
func (s *Store) CreateRegion(ctx context.Context, g *Region, actor string) error {
	now := s.clock()
	g.Version, g.CreatedAt, g.UpdatedAt = 1, now, now
	lat, lon := locationArgs(g.Location)
	err := s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "INSERT INTO regions ("+regionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			g.Name, g.ProvisionURL, g.MQTTURL, g.ProbeURL, lat, lon, g.Weight, g.Status, g.Version, now, now); err != nil {
			return err
		}
		data, err := eventData(regionAudit{Name: g.Name, Status: g.Status, Version: g.Version})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventRegionCreated, actor, data)
	})
	if err != nil {
		if s.d.isUniqueViolation(err) {
			return fmt.Errorf("store: region %s exists already: %w", g.Name, ErrDuplicate)
		}
		return fmt.Errorf("store: create region %s: %w", g.Name, err)
	}
	return nil
}

// Region returns one region, or ErrNotFound.
func (s *Store) Region(ctx context.Context, name string) (*Region, error) {
	g, err := scanRegion(s.queryRow(ctx, "SELECT "+regionCols+" FROM regions WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: region %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read region %s: %w", name, err)
	}
	return g, nil
}

// ListRegions returns every region, by name.
func (s *Store) ListRegions(ctx context.Context) ([]Region, error) {
	rows, err := s.query(ctx, "SELECT "+regionCols+" FROM regions ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: list regions: %w", err)
	}
	out, err := scanAll(rows, scanRegion)
	if err != nil {
		return nil, fmt.Errorf("store: list regions: %w", err)
	}
	return out, nil
}

// UpdateRegion reads region name, lets fn change it and writes it back
// with the next version, in one transaction, with an audit log event. The
// name cannot change. An error from fn aborts and is returned as it is.
func (s *Store) UpdateRegion(ctx context.Context, name, actor string, fn func(*Region) error) (*Region, error) {
	var out *Region
	err := s.inTx(ctx, func(t *txn) error {
		g, err := scanRegion(t.queryRow(ctx, "SELECT "+regionCols+" FROM regions r WHERE name = ?"+t.d.forUpdate("r"), name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: region %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read region %s: %w", name, err)
		}
		prev := g.Version
		if err := fn(g); err != nil {
			return err
		}
		g.Name, g.Version, g.UpdatedAt = name, prev+1, s.clock()
		lat, lon := locationArgs(g.Location)
		res, err := t.exec(ctx, "UPDATE regions SET provision_url = ?, mqtt_url = ?, probe_url = ?, latitude = ?, longitude = ?, weight = ?, status = ?, version = ?, updated_at = ? WHERE name = ? AND version = ?",
			g.ProvisionURL, g.MQTTURL, g.ProbeURL, lat, lon, g.Weight, g.Status, g.Version, g.UpdatedAt, name, prev)
		if err != nil {
			return fmt.Errorf("store: update region %s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("store: update region %s: %w", name, ErrVersionMismatch)
		}
		data, err := eventData(regionAudit{Name: name, Status: g.Status, Version: g.Version})
		if err != nil {
			return err
		}
		out = g
		return s.appendFleetEvent(ctx, t, EventRegionUpdated, actor, data)
	})
	return out, err
}

// regionHomedQuery counts the devices whose home is a region. It reads
// only the primary key of device_attrs (key, value, device_id): a region's
// devices are one range of that index, never a scan of devices.
const regionHomedQuery = "SELECT COUNT(*) FROM device_attrs WHERE key = ? AND value = ?"

// countHomed is how many devices name region as their home.
func countHomed(ctx context.Context, q interface {
	queryRow(ctx context.Context, query string, args ...any) *sql.Row
}, region string) (int64, error) {
	var n int64
	if err := q.queryRow(ctx, regionHomedQuery, AttrRegionHome, indexKey(region)).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count the devices of region %s: %w", region, err)
	}
	return n, nil
}

// DeleteRegion removes a region that is home to no device, in one
// transaction that also retires the region's own operational CA, if it
// has one, and records region.deleted (naming that CA) in the fleet audit
// log. A region that devices still name as their home is refused with a
// *RegionInUseError (ErrRegionInUse) and nothing changes: drain it first.
// A missing region is ErrNotFound.
//
// The retired CA stops signing at once; it stays trusted, and its
// certificates answerable by CRL and OCSP, until its own expiry (status
// retiring, retire_at its not_after), so devices drained from the region
// keep connecting until they renew from their new home's CA. Revoke their
// certificates to cut them off sooner. A region created again under the
// same name gets a new CA.
func (s *Store) DeleteRegion(ctx context.Context, name, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		if err := lockRegion(ctx, t, name); err != nil {
			return err
		}
		n, err := countHomed(ctx, t, name)
		if err != nil {
			return err
		}
		if n > 0 {
			return &RegionInUseError{Region: name, Devices: n}
		}
		if _, err := t.exec(ctx, "DELETE FROM regions WHERE name = ?", name); err != nil {
			return fmt.Errorf("store: delete region %s: %w", name, err)
		}
		caID, err := retireRegionCA(ctx, t, name)
		if err != nil {
			return err
		}
		data, err := eventData(regionAudit{Name: name, CA: caID})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventRegionDeleted, actor, data)
	})
}

// lockRegion locks region's row inside t, or fails with ErrNotFound.
func lockRegion(ctx context.Context, t *txn, name string) error {
	var got string
	err := t.queryRow(ctx, "SELECT name FROM regions r WHERE name = ?"+t.d.forUpdate("r"), name).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: region %s: %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: read region %s: %w", name, err)
	}
	return nil
}

// retireRegionCA stops the active CA of region from signing, inside t:
// it becomes retiring until its own expiry, so what it issued stays
// verifiable. It returns the CA's id, "" when the region had none.
func retireRegionCA(ctx context.Context, t *txn, region string) (string, error) {
	var id string
	var notAfter time.Time
	err := t.queryRow(ctx, "SELECT id, not_after FROM cas c WHERE purpose = ? AND factory = ? AND status = ?"+t.d.forUpdate("c"),
		RegionalCAPurpose, region, CAActive).Scan(&id, &notAfter)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("store: read the CA of region %s: %w", region, err)
	}
	t.notice(notify.CAs, notify.All)
	if _, err := t.exec(ctx, "UPDATE cas SET status = ?, retire_at = ? WHERE id = ?", CARetiring, notAfter.UTC(), id); err != nil {
		return "", fmt.Errorf("store: retire the CA %s of region %s: %w", id, region, err)
	}
	return id, nil
}
