package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
)

// Page sizes for ListDevices.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// eachPageSize is the page EachDevice reads at a time: large enough to
	// amortise the query, small enough to keep memory flat.
	eachPageSize = 500
)

// cursorVersion tags the cursor format so it can change without old
// cursors being misread.
const cursorVersion = 1

// pageCursor is what a pagination cursor encodes.
type pageCursor struct {
	V     int    `json:"v"`
	After string `json:"after"`
}

func encodeCursor(afterID string) string {
	b, _ := json.Marshal(pageCursor{V: cursorVersion, After: afterID}) // cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the id a cursor resumes after; "" for no cursor.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("store: %w: not base64url", ErrBadCursor)
	}
	var pc pageCursor
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pc); err != nil || dec.More() {
		return "", fmt.Errorf("store: %w: not a Muster cursor", ErrBadCursor)
	}
	if pc.V != cursorVersion || fleet.ValidName("after", pc.After) != nil {
		return "", fmt.Errorf("store: %w: unknown version or position", ErrBadCursor)
	}
	return pc.After, nil
}

// clampLimit maps a requested page size into 1..MaxPageSize, 0 meaning the
// default.
func clampLimit(limit int) int {
	switch {
	case limit == 0:
		return DefaultPageSize
	case limit < 1:
		return 1
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// ListDevices returns one page of the devices that match f, in id order,
// and the cursor of the next page ("" on the last page). limit is clamped
// to 1..MaxPageSize; 0 means DefaultPageSize. A cursor this store did not
// issue is ErrBadCursor; an unknown state in f is a *fleet.FieldError.
func (s *Store) ListDevices(ctx context.Context, f DeviceFilter, cursor string, limit int) ([]*fleet.Device, string, error) {
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	devs, err := s.listPage(ctx, f, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(devs) <= limit {
		return devs, "", nil
	}
	devs = devs[:limit]
	return devs, encodeCursor(devs[limit-1].ID), nil
}

// EachDevice calls fn for every device that matches f, in id order, reading
// a page at a time so memory stays flat however many match. No database
// resources are held while fn runs, so fn may call the Store. fn's error
// stops the walk and is returned.
func (s *Store) EachDevice(ctx context.Context, f DeviceFilter, fn func(*fleet.Device) error) error {
	after := ""
	for {
		devs, err := s.listPage(ctx, f, after, eachPageSize)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(devs) < eachPageSize {
			return nil
		}
		after = devs[len(devs)-1].ID
	}
}

// listPage returns up to n devices matching f with ids after after.
func (s *Store) listPage(ctx context.Context, f DeviceFilter, after string, n int) ([]*fleet.Device, error) {
	q, args, ok, err := listQuery(f, after, n)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	return scanDevices(rows)
}

// listQuery builds the page query for f. ok is false when f can match
// nothing, so no query is needed.
func listQuery(f DeviceFilter, after string, n int) (q string, args []any, ok bool, err error) {
	if f.State != "" && !f.State.Valid() {
		return "", nil, false, &fleet.FieldError{Field: "state", Message: fmt.Sprintf("unknown state %q", f.State)}
	}
	var where []string
	eq := func(col, v string) {
		if v != "" {
			where = append(where, "d."+col+" = ?")
			args = append(args, v)
		}
	}
	eq("state", string(f.State))
	eq("model", f.Model)
	eq("factory", f.Factory)
	if f.Batch != "" {
		// The literal repeats the partial index's predicate so the planner
		// may use that index.
		where = append(where, "d.batch = ? AND d.batch <> ''")
		args = append(args, f.Batch)
	}
	if f.Owner != "" {
		where = append(where, "d.owner = ? AND d.owner <> ''")
		args = append(args, indexKey(f.Owner))
	}
	if f.SerialPrefix != "" {
		hi, ok := prefixEnd(f.SerialPrefix)
		if !ok {
			return "", nil, false, nil
		}
		where = append(where, "d.serial >= ? AND d.serial < ?")
		args = append(args, f.SerialPrefix, hi)
	}
	in := func(table, cond string, vals ...any) {
		where = append(where, "d.id IN (SELECT device_id FROM "+table+" WHERE "+cond+")")
		args = append(args, vals...)
	}
	if f.Group != "" {
		in("device_groups", "grp = ?", f.Group)
	}
	if f.Tag != "" {
		in("device_tags", "tag = ?", f.Tag)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Attributes)) {
		in("device_attrs", "key = ? AND value = ?", k, indexKey(f.Attributes[k]))
	}
	if f.Component != "" {
		in("bom_components", "name_key = ?", indexKey(f.Component))
	}
	if after != "" {
		where = append(where, "d.id > ?")
		args = append(args, after)
	}
	var b strings.Builder
	b.WriteString(deviceSelect)
	for i, w := range where {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(w)
	}
	b.WriteString(" ORDER BY d.id LIMIT ?")
	args = append(args, n)
	return b.String(), args, true, nil
}

// prefixEnd returns the smallest string greater than every string that
// starts with p, so "serial >= p AND serial < end" is a prefix match any
// B-tree can serve. Serials are validated names (ASCII letters, digits and
// a little punctuation), so a prefix with any other byte matches nothing:
// ok is false.
func prefixEnd(p string) (end string, ok bool) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return p[:len(p)-1] + string(p[len(p)-1]+1), true
}
