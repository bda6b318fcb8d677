package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// devKey is a device's natural key: its serial is unique per factory and model.
type devKey struct{ factory, model, serial string }

func keyOf(d *fleet.Device) devKey {
	return devKey{d.Identity.Factory, d.Identity.Model, d.Identity.Serial}
}

func (k devKey) duplicate() error {
	return fmt.Errorf("store: factory %q model %q serial %q is already registered: %w", k.factory, k.model, k.serial, ErrDuplicate)
}

// newDevice is a validated device ready to insert, with its first event.
type newDevice struct {
	rec   *record
	event fleet.Event
}

// createdData is the data of a device.created event.
type createdData struct {
	Identity  fleet.Identity `json:"identity"`
	State     fleet.State    `json:"state"`
	BOMSha256 string         `json:"bomSha256,omitempty"`
}

// bomCache remembers flattened BOMs by their bytes: devices of one model
// usually share one BOM, and a batch should not flatten it thousands of times.
type bomCache map[string][]fleet.Component

func (c bomCache) components(bom []byte) ([]fleet.Component, error) {
	if len(bom) == 0 {
		return nil, nil
	}
	if comps, ok := c[string(bom)]; ok {
		return comps, nil
	}
	comps, err := fleet.ParseBOM(bom)
	if err != nil {
		return nil, &fleet.FieldError{Field: "manufacturing.bom", Message: err.Error()}
	}
	c[string(bom)] = comps
	return comps, nil
}

// validate is fleet.Validate, with the BOM flattened through boms instead of
// parsed again for every device: in a batch most devices share one BOM, and
// parsing it is most of Validate's cost. It returns the BOM's components.
func validate(d *fleet.Device, boms bomCache) ([]fleet.Component, error) {
	bom := d.Manufacturing.BOM
	d.Manufacturing.BOM = nil
	err := fleet.Validate(d)
	d.Manufacturing.BOM = bom
	// Validate checks identity and state before the BOM; keep its order so
	// a device with several faults is told the same first fault.
	var fe *fleet.FieldError
	if err != nil && (!errors.As(err, &fe) || strings.HasPrefix(fe.Field, "identity.") || fe.Field == "lifecycle.state") {
		return nil, err
	}
	comps, bomErr := boms.components(bom)
	if bomErr != nil {
		return nil, bomErr
	}
	return comps, err
}

// prepareNew fills in what the store owns on a new device (id, version,
// timestamps, initial state) on a copy of in, validates it and seals its
// first event. in itself is left alone until the device is committed. id is
// the id to give the device when in has none.
func prepareNew(in *fleet.Device, id, actor string, now time.Time, boms bomCache) (*newDevice, error) {
	if in == nil {
		return nil, errors.New("store: nil device")
	}
	d := *in
	if d.ID == "" {
		d.ID = id
	} else if err := fleet.ValidName("id", d.ID); err != nil {
		return nil, err
	}
	d.Version = 1
	d.CreatedAt, d.UpdatedAt = now, now
	if d.Lifecycle.State == "" {
		d.Lifecycle.State = fleet.StateManufactured
	}
	if d.Lifecycle.StateChangedAt.IsZero() {
		d.Lifecycle.StateChangedAt = now
	}
	if len(d.Lifecycle.Changes) == 0 {
		d.Lifecycle.Changes = []fleet.StateChange{{To: d.Lifecycle.State, At: now, Actor: actor}}
	}
	comps, err := validate(&d, boms)
	if err != nil {
		return nil, err
	}
	rec, err := newRecord(&d, comps)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(createdData{Identity: d.Identity, State: d.Lifecycle.State, BOMSha256: rec.bomSHA})
	if err != nil {
		return nil, fmt.Errorf("store: encode created event: %w", err)
	}
	nd := &newDevice{rec: rec, event: fleet.Event{Subject: d.ID, Type: fleet.EventCreated, Actor: actor, At: now, Data: data}}
	nd.event.Seal(nil)
	return nd, nil
}

// insertNew writes new devices, their BOMs, side rows and first events.
func insertNew(ctx context.Context, t *txn, nds []*newDevice) error {
	if len(nds) == 0 {
		return nil
	}
	devs := newBulkRows("devices", deviceCols, len(nds))
	events := newBulkRows("events", eventCols, len(nds))
	var side [len(sideTables)]*bulkRows
	for i, st := range sideTables {
		side[i] = newBulkRows(st.name, st.cols, len(nds))
	}
	var sideRows [len(sideTables)][][]any
	for _, nd := range nds {
		if err := putBOM(ctx, t, nd.rec); err != nil {
			return err
		}
		devs.add(nd.rec.deviceRow(nd.event.Seq, nd.event.Hash)...)
		events.add(eventRow(&nd.event)...)
		for i, rows := range nd.rec.side {
			sideRows[i] = append(sideRows[i], rows...)
		}
	}
	// In key order, consecutive rows land on the same B-tree pages.
	for i, rows := range sideRows {
		slices.SortFunc(rows, compareRows)
		for _, row := range rows {
			side[i].add(row...)
		}
	}
	for _, b := range append([]*bulkRows{devs, events}, side[:]...) {
		if b.len() == 0 {
			continue
		}
		if err := t.d.bulkInsert(ctx, t, b); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

// putBOM stores r's BOM unless this transaction or an earlier one already did.
func putBOM(ctx context.Context, t *txn, r *record) error {
	if r.bomSHA == "" || t.boms[r.bomSHA] {
		return nil
	}
	if _, err := t.exec(ctx, "INSERT INTO boms (sha256, doc) VALUES (?, ?) ON CONFLICT DO NOTHING",
		r.bomSHA, string(r.dev.Manufacturing.BOM)); err != nil {
		return fmt.Errorf("store: store BOM %s: %w", r.bomSHA, err)
	}
	if t.boms == nil {
		t.boms = make(map[string]bool)
	}
	t.boms[r.bomSHA] = true
	return nil
}

// CreateDevice registers a new device. It assigns the id (when empty),
// version 1, the timestamps and, when no state is given, the manufactured
// state, then writes the device and its device.created event in one
// transaction. A validation failure is a *fleet.FieldError; a taken
// factory/model/serial is ErrDuplicate. On success d holds the stored record.
func (s *Store) CreateDevice(ctx context.Context, d *fleet.Device, actor string) error {
	now := s.clock()
	nd, err := prepareNew(d, fleet.NewID("dev_", now), actor, now, bomCache{})
	if err != nil {
		return err
	}
	key := keyOf(nd.rec.dev)
	err = s.inTx(ctx, func(t *txn) error {
		found, err := findByKeys(ctx, t.query, []devKey{key})
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return key.duplicate()
		}
		return insertNew(ctx, t, []*newDevice{nd})
	})
	if err != nil {
		if s.d.isUniqueViolation(err) {
			// Another writer got there between the check and the insert,
			// or the caller chose an id that is taken.
			if _, ferr := s.FindDevice(ctx, key.factory, key.model, key.serial); ferr == nil {
				return key.duplicate()
			}
			return fmt.Errorf("store: device id %q is already taken: %w", nd.rec.dev.ID, ErrDuplicate)
		}
		return err
	}
	*d = *nd.rec.dev
	return nil
}

// queryFunc is Store.query or txn.query: where a read runs.
type queryFunc func(ctx context.Context, query string, args ...any) (*sql.Rows, error)

// findByKeys returns the stored devices among keys.
func findByKeys(ctx context.Context, query queryFunc, keys []devKey) (map[devKey]*fleet.Device, error) {
	found := make(map[devKey]*fleet.Device)
	const per = 500
	for start := 0; start < len(keys); start += per {
		chunk := keys[start:min(start+per, len(keys))]
		var q strings.Builder
		q.WriteString(deviceSelect + " WHERE (d.factory, d.model, d.serial) IN (VALUES ")
		args := make([]any, 0, 3*len(chunk))
		for i, k := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?)")
			args = append(args, k.factory, k.model, k.serial)
		}
		q.WriteByte(')')
		rows, err := query(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("store: look up existing devices: %w", err)
		}
		devs, err := scanDevices(rows)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			found[keyOf(d)] = d
		}
	}
	return found, nil
}

// scanDevices decodes and closes rows of deviceSelect.
func scanDevices(rows *sql.Rows) ([]*fleet.Device, error) {
	defer rows.Close()
	var out []*fleet.Device
	for rows.Next() {
		var doc string
		var bom sql.NullString
		if err := rows.Scan(&doc, &bom); err != nil {
			return nil, fmt.Errorf("store: read device: %w", err)
		}
		d, err := decodeDevice(doc, bom)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read devices: %w", err)
	}
	return out, nil
}

// GetDevice returns the device with the given id, or ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (*fleet.Device, error) {
	return s.oneDevice(ctx, "device "+id, deviceSelect+" WHERE d.id = ?", id)
}

// FindDevice returns the device with the given natural key, or ErrNotFound.
func (s *Store) FindDevice(ctx context.Context, factory, model, serial string) (*fleet.Device, error) {
	return s.oneDevice(ctx, fmt.Sprintf("device with factory %q model %q serial %q", factory, model, serial),
		deviceSelect+" WHERE d.factory = ? AND d.model = ? AND d.serial = ?", factory, model, serial)
}

func (s *Store) oneDevice(ctx context.Context, what, query string, args ...any) (*fleet.Device, error) {
	var doc string
	var bom sql.NullString
	err := s.queryRow(ctx, query, args...).Scan(&doc, &bom)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", what, err)
	}
	return decodeDevice(doc, bom)
}

// DeviceComponents returns the components of a device's BOM, flattened in
// document order; empty when it has no BOM, ErrNotFound when there is no
// such device. They come from the stored BOM itself, the source of truth.
func (s *Store) DeviceComponents(ctx context.Context, id string) ([]fleet.Component, error) {
	var bom sql.NullString
	err := s.queryRow(ctx, "SELECT b.doc FROM devices d LEFT JOIN boms b ON b.sha256 = d.bom_sha256 WHERE d.id = ?", id).Scan(&bom)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read BOM of %s: %w", id, err)
	}
	if !bom.Valid {
		return []fleet.Component{}, nil
	}
	comps, err := fleet.ParseBOM([]byte(bom.String))
	if err != nil {
		return nil, fmt.Errorf("store: stored BOM of %s: %w", id, err)
	}
	return comps, nil
}

// compareRows orders side rows by their columns, strings and int64s.
func compareRows(a, b []any) int {
	for i := range a {
		var c int
		switch x := a[i].(type) {
		case string:
			c = strings.Compare(x, b[i].(string))
		case int64:
			c = cmp.Compare(x, b[i].(int64))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
