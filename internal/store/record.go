package store

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/muster-iot/muster/internal/fleet"
)

// record is a device as it is written: the devices row and the rows of the
// side tables that index its list-valued fields.
type record struct {
	dev *fleet.Device
	doc string
	// bomSHA is the hex SHA-256 of the BOM, "" when there is none.
	bomSHA string
	side   [len(sideTables)][][]any
}

// sideTable is a table that indexes one list-valued field of a device. Its
// first keyCols columns are its primary key; the rest are payload.
type sideTable struct {
	name    string
	cols    []string
	keyCols int
}

// sideTables lists every side table, in the order of record.side.
var sideTables = [...]sideTable{
	{name: "device_groups", cols: []string{"grp", "device_id"}, keyCols: 2},
	{name: "device_tags", cols: []string{"tag", "device_id"}, keyCols: 2},
	{name: "device_attrs", cols: []string{"key", "value", "device_id"}, keyCols: 3},
	{name: "bom_components", cols: []string{"name_key", "device_id", "idx", "type", "grp", "version", "purl"}, keyCols: 3},
}

const (
	sideGroups = iota
	sideTags
	sideAttrs
	sideComponents
)

// deviceCols are the devices columns in the order record.deviceRow gives them.
var deviceCols = []string{"id", "factory", "model", "serial", "batch", "state", "owner",
	"version", "head_seq", "head_hash", "created_at", "updated_at", "bom_sha256", "doc"}

// newRecord encodes d, whose BOM has already been validated and flattened
// into comps.
func newRecord(d *fleet.Device, comps []fleet.Component) (*record, error) {
	// The BOM is kept apart, byte for byte: encoding/json would compact it.
	body := *d
	body.Manufacturing.BOM = nil
	doc, err := json.Marshal(&body)
	if err != nil {
		return nil, fmt.Errorf("encode device %s: %w", d.ID, err)
	}
	return storedRecord(d, string(doc), comps)
}

// storedRecord is the record of d whose doc is already encoded: for the
// device an update starts from, whose doc was just read, it spares
// encoding the device again.
func storedRecord(d *fleet.Device, doc string, comps []fleet.Component) (*record, error) {
	r := &record{dev: d, doc: doc}
	if len(d.Manufacturing.BOM) > 0 {
		// PostgreSQL TEXT holds only UTF-8, and CycloneDX JSON must be UTF-8.
		if !utf8.Valid(d.Manufacturing.BOM) {
			return nil, &fleet.FieldError{Field: "manufacturing.bom", Message: "is not valid UTF-8"}
		}
		sum := sha256.Sum256(d.Manufacturing.BOM)
		r.bomSHA = hex.EncodeToString(sum[:])
	}

	id := d.ID
	for _, g := range dedupe(d.Inventory.Groups) {
		r.side[sideGroups] = append(r.side[sideGroups], []any{g, id})
	}
	for _, t := range dedupe(d.Inventory.Tags) {
		r.side[sideTags] = append(r.side[sideTags], []any{t, id})
	}
	for k, v := range d.Attributes {
		r.side[sideAttrs] = append(r.side[sideAttrs], []any{k, indexKey(v), id})
	}
	for i, c := range comps {
		r.side[sideComponents] = append(r.side[sideComponents],
			[]any{indexKey(c.Name), id, int64(i), c.Type, c.Group, c.Version, c.PURL})
	}
	return r, nil
}

// deviceRow is the devices row for r with the given history head.
func (r *record) deviceRow(headSeq int64, headHash string) []any {
	d := r.dev
	var bom any
	if r.bomSHA != "" {
		bom = r.bomSHA
	}
	return []any{d.ID, d.Identity.Factory, d.Identity.Model, d.Identity.Serial, d.Identity.Batch,
		string(d.Lifecycle.State), indexKey(d.Inventory.Owner), d.Version, headSeq, headHash,
		d.CreatedAt, d.UpdatedAt, bom, r.doc}
}

// decodeDevice rebuilds a device from its doc and its BOM's bytes.
func decodeDevice(doc string, bom sql.NullString) (*fleet.Device, error) {
	d := new(fleet.Device)
	if err := json.Unmarshal([]byte(doc), d); err != nil {
		return nil, fmt.Errorf("store: decode device: %w", err)
	}
	if bom.Valid {
		d.Manufacturing.BOM = json.RawMessage(bom.String)
	}
	return d, nil
}

// decode returns a fresh copy of the device r was made from.
func (r *record) decode() (*fleet.Device, error) {
	bom := sql.NullString{String: string(r.dev.Manufacturing.BOM), Valid: r.bomSHA != ""}
	return decodeDevice(r.doc, bom)
}

// deviceSelect reads what decodeDevice needs; queries add WHERE and ORDER.
const deviceSelect = "SELECT d.doc, b.doc FROM devices d LEFT JOIN boms b ON b.sha256 = d.bom_sha256"

// hashedKeyPrefix marks an index key that is a digest rather than the value.
const hashedKeyPrefix = "#sha256:"

// maxIndexedLen is the longest value an index stores as is. PostgreSQL
// refuses B-tree entries over about 2.7 kB, and long keys bloat any index.
const maxIndexedLen = 256

// indexKey is what the side tables and the owner column store for a
// free-text value: the value itself when short, else a digest of it. Values
// that merely look like digests are digested too, so the mapping stays
// one-to-one and an equality filter on the key is an equality on the value.
func indexKey(v string) string {
	if len(v) <= maxIndexedLen && !strings.HasPrefix(v, hashedKeyPrefix) {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return hashedKeyPrefix + hex.EncodeToString(sum[:])
}

// dedupe returns ss without repeats, keeping first occurrences in order.
func dedupe(ss []string) []string {
	if len(ss) < 2 {
		return ss
	}
	seen := make(map[string]struct{}, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
