package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// pageCursor is what a pagination cursor encodes: where the last page
// ended, and which filter drove it so the next page need not probe again.
type pageCursor struct {
	V     int    `json:"v"`
	After string `json:"after"`
	By    string `json:"by,omitempty"`
}

func encodeCursor(c pageCursor) string {
	c.V = cursorVersion
	b, _ := json.Marshal(c) // cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor; the zero pageCursor for none.
func decodeCursor(c string) (pageCursor, error) {
	if c == "" {
		return pageCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return pageCursor{}, fmt.Errorf("store: %w: not base64url", ErrBadCursor)
	}
	var pc pageCursor
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pc); err != nil || dec.More() {
		return pageCursor{}, fmt.Errorf("store: %w: not a Muster cursor", ErrBadCursor)
	}
	if pc.V != cursorVersion || fleet.ValidName("after", pc.After) != nil || len(pc.By) > 2*fleet.MaxNameLen {
		return pageCursor{}, fmt.Errorf("store: %w: unknown version or position", ErrBadCursor)
	}
	return pc, nil
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
//
// A page may hold fewer than limit devices, even none, and still not be the
// last: a request reads a bounded part of the index when combined filters
// match few devices (see scanWindow). Follow nextCursor until it is "".
func (s *Store) ListDevices(ctx context.Context, f DeviceFilter, cursor string, limit int) ([]*fleet.Device, string, error) {
	pc, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	q, err := newListQuery(f)
	if err != nil {
		return nil, "", err
	}
	by, err := s.plan(ctx, q, pc.By)
	if err != nil {
		return nil, "", err
	}
	devs, resume, err := s.listPage(ctx, q, by, pc.After, limit+1)
	if err != nil {
		return nil, "", err
	}
	switch {
	case len(devs) > limit:
		devs = devs[:limit]
		return devs, encodeCursor(pageCursor{After: devs[limit-1].ID, By: by}), nil
	case resume != "":
		// The scan window ran out first: a short page, but not the last.
		return devs, encodeCursor(pageCursor{After: resume, By: by}), nil
	}
	return devs, "", nil
}

// EachDevice calls fn for every device that matches f, in id order, reading
// a page at a time so memory stays flat however many match. No database
// resources are held while fn runs, so fn may call the Store. fn's error
// stops the walk and is returned.
func (s *Store) EachDevice(ctx context.Context, f DeviceFilter, fn func(*fleet.Device) error) error {
	q, err := newListQuery(f)
	if err != nil {
		return err
	}
	by, err := s.plan(ctx, q, "")
	if err != nil {
		return err
	}
	after := ""
	for {
		devs, resume, err := s.listPage(ctx, q, by, after, eachPageSize)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if err := fn(d); err != nil {
				return err
			}
		}
		switch {
		case len(devs) == eachPageSize:
			after = devs[len(devs)-1].ID
		case resume != "":
			after = resume
		default:
			return nil
		}
	}
}

// term is one condition of a DeviceFilter.
type term struct {
	// name identifies the term in a cursor's plan.
	name string
	// table is where the term is indexed: "devices" or a side table.
	table string
	// cols are compared with args: col = arg each, or, for a serial
	// prefix, col >= args[0] AND col < args[1].
	cols   []string
	args   []any
	prefix bool
	// partial marks a devices column whose index leaves out ''.
	partial bool
	// repeats marks a side table that may list one device several times.
	repeats bool
}

// listQuery is a DeviceFilter as terms.
type listQuery struct {
	terms []term
	// empty is set when the filter can match nothing.
	empty bool
}

// newListQuery turns f into terms, the likely most selective kinds first:
// when probing cannot tell filters apart, the first one drives.
func newListQuery(f DeviceFilter) (*listQuery, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, &fleet.FieldError{Field: "state", Message: fmt.Sprintf("unknown state %q", f.State)}
	}
	q := &listQuery{}
	side := func(name, table string, cols []string, args ...any) {
		q.terms = append(q.terms, term{name: name, table: table, cols: cols, args: args})
	}
	col := func(name, v string, partial bool) {
		if v != "" {
			q.terms = append(q.terms, term{name: name, table: "devices", cols: []string{name}, args: []any{v}, partial: partial})
		}
	}
	if f.Group != "" {
		side("group", "device_groups", []string{"grp"}, f.Group)
	}
	if f.Tag != "" {
		side("tag", "device_tags", []string{"tag"}, f.Tag)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Attributes)) {
		side("attr:"+k, "device_attrs", []string{"key", "value"}, k, indexKey(f.Attributes[k]))
	}
	if f.Component != "" {
		side("component", "bom_components", []string{"name_key"}, indexKey(f.Component))
		q.terms[len(q.terms)-1].repeats = true
	}
	col("batch", f.Batch, true)
	if f.Owner != "" {
		col("owner", indexKey(f.Owner), true)
	}
	col("model", f.Model, false)
	col("factory", f.Factory, false)
	col("state", string(f.State), false)
	if f.SerialPrefix != "" {
		hi, ok := prefixEnd(f.SerialPrefix)
		if !ok {
			q.empty = true
		}
		q.terms = append(q.terms, term{name: "serial", table: "devices", cols: []string{"serial"}, args: []any{f.SerialPrefix, hi}, prefix: true})
	}
	return q, nil
}

// where is t's condition on the table aliased a, with col wrapping each
// column reference.
func (t *term) where(a string, col func(string) string) string {
	if t.prefix {
		c := col(a + "." + t.cols[0])
		return c + " >= ? AND " + c + " < ?"
	}
	parts := make([]string, len(t.cols))
	for i, c := range t.cols {
		parts[i] = col(a+"."+c) + " = ?"
	}
	w := strings.Join(parts, " AND ")
	if t.partial {
		// Repeats the partial index's predicate so the index qualifies.
		w += " AND " + a + "." + t.cols[0] + " <> ''"
	}
	return w
}

// drive is t's condition as the driving index's range scan, and its
// arguments. The last equality is written as a closed range: PostgreSQL
// takes col = const as fixing col, drops it from ORDER BY and may then walk
// the primary key hoping to meet matches early, which fails when matches
// cluster (a factory, a recent batch); a range keeps the index's order the
// one asked for.
func (t *term) drive(a string) (string, []any) {
	if t.prefix {
		return t.where(a, asIs), t.args
	}
	last := len(t.cols) - 1
	parts := make([]string, 0, len(t.cols)+1)
	for _, c := range t.cols[:last] {
		parts = append(parts, a+"."+c+" = ?")
	}
	c := a + "." + t.cols[last]
	parts = append(parts, c+" >= ? AND "+c+" <= ?")
	if t.partial {
		parts = append(parts, c+" <> ''")
	}
	return strings.Join(parts, " AND "), append(slices.Clone(t.args), t.args[last])
}

func asIs(col string) string { return col }

// probeCap bounds how many index entries a plan probe counts. A filter
// with fewer matches drives the query: reading all of them, matching or
// not, then costs at most this many rows.
const probeCap = 2500

// plan names the term that drives the list query, "" to walk devices in id
// order. The driver is the filter with the fewest matches, found by
// counting each one's index entries up to probeCap; planners estimate that
// poorly here (SQLite keeps no per-value statistics, PostgreSQL assumes
// matches spread evenly over ids, which factories, batches and rollouts
// are not). hint is the plan a cursor carried, kept when it still fits q.
func (s *Store) plan(ctx context.Context, q *listQuery, hint string) (string, error) {
	if q.empty || len(q.terms) == 0 {
		return "", nil
	}
	if hint != "" && slices.ContainsFunc(q.terms, func(t term) bool { return t.name == hint }) {
		return hint, nil
	}
	if len(q.terms) == 1 && !q.terms[0].prefix {
		return q.terms[0].name, nil
	}
	// One query counts for every term.
	probes := make([]string, len(q.terms))
	var args []any
	for i := range q.terms {
		t := &q.terms[i]
		probes[i] = fmt.Sprintf("(SELECT COUNT(*) FROM (SELECT 1 FROM %s p WHERE %s LIMIT %d) c%d)", t.table, t.where("p", asIs), s.probeCap, i)
		args = append(args, t.args...)
	}
	counts := make([]int, len(q.terms))
	dest := make([]any, len(counts))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := s.queryRow(ctx, "SELECT "+strings.Join(probes, ", "), args...).Scan(dest...); err != nil {
		return "", fmt.Errorf("store: plan device list: %w", err)
	}
	best, bestN := "", s.probeCap
	for i, n := range counts {
		if n < bestN {
			best, bestN = q.terms[i].name, n
		}
	}
	if best != "" {
		return best, nil
	}
	// Every filter matches many devices: any id-ordered one finds a page
	// quickly unless they rarely meet, and the scan window bounds that.
	for _, t := range q.terms {
		if !t.prefix {
			return t.name, nil
		}
	}
	return "", nil
}

// scanWindow bounds how many entries of the driving index one list request
// reads when filters must be combined. Filters that each match many devices
// but rarely together would otherwise read the whole index for a page;
// instead the request returns what the window held, perhaps nothing, with
// a cursor to continue after it.
const scanWindow = 2500

// listPage returns up to n devices of q with ids after after, driven by
// the term named by. When a scan window ends before n devices are found,
// resume is the id to continue after.
//
// The query orders by the driving index's whole key: the leading columns
// are fixed by the filter, so that is id order, and no planner can then
// prefer another index and sort, or walk the primary key hoping to meet
// matches early.
func (s *Store) listPage(ctx context.Context, q *listQuery, by, after string, n int) (devs []*fleet.Device, resume string, err error) {
	if q.empty {
		return nil, "", nil
	}
	driver := slices.IndexFunc(q.terms, func(t term) bool { return t.name == by })
	// The driver is read from table, as filtered by drive, in order; key is
	// the device id in it and keyCond how conditions name that id; join
	// is how devices d joins it.
	table, key, keyCond, order := "devices d", "d.id", "d.id", "d.id"
	var drive, join []string
	var args []any
	if driver >= 0 {
		t := &q.terms[driver]
		alias := "d"
		switch {
		case t.prefix:
			// The serial index is not in id order: sort its few matches.
			keyCond, order = s.d.unindexed("d.id"), "d.id || ''"
		case t.table == "devices":
			order = "d." + t.cols[0] + ", d.id"
		default:
			alias = "x"
			table, key, keyCond = t.table+" x", "x.device_id", "x.device_id"
			order = "x." + strings.Join(t.cols, ", x.") + ", x.device_id"
			join = append(join, "d.id = x.device_id")
			if t.repeats {
				join = append(join, "NOT EXISTS (SELECT 1 FROM "+t.table+" r WHERE r.name_key = x.name_key AND r.device_id = x.device_id AND r.idx < x.idx)")
			}
		}
		cond, condArgs := t.drive(alias)
		drive = append(drive, cond)
		args = append(args, condArgs...)
	}
	if after != "" {
		drive = append(drive, keyCond+" > ?")
		args = append(args, after)
	}

	if len(q.terms) > 1 && (driver < 0 || !q.terms[driver].prefix) {
		wq := "SELECT " + key + " FROM " + table + whereClause(drive) + " ORDER BY " + order + " LIMIT 1 OFFSET ?"
		err := s.queryRow(ctx, wq, append(slices.Clone(args), s.scanWindow-1)...).Scan(&resume)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, "", fmt.Errorf("store: list devices: %w", err)
		}
		if resume != "" {
			drive = append(drive, keyCond+" <= ?")
			args = append(args, resume)
		}
	}

	// The other terms are checked on each driving row; on SQLite they are
	// kept off indexes so that the driver stays the driver.
	from := "devices d"
	if table != "devices d" {
		// CROSS JOIN keeps the side table the outer loop in SQLite.
		from = table + " CROSS JOIN devices d"
	}
	where := append(drive, join...)
	for i := range q.terms {
		if i == driver {
			continue
		}
		t := &q.terms[i]
		if t.table == "devices" {
			where = append(where, t.where("d", s.d.unindexed))
		} else {
			where = append(where, "EXISTS (SELECT 1 FROM "+t.table+" y WHERE "+t.where("y", asIs)+" AND y.device_id = d.id)")
		}
		args = append(args, t.args...)
	}
	args = append(args, n)
	rows, err := s.query(ctx, "SELECT d.doc, b.doc FROM "+from+" LEFT JOIN boms b ON b.sha256 = d.bom_sha256"+
		whereClause(where)+" ORDER BY "+order+" LIMIT ?", args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list devices: %w", err)
	}
	if devs, err = scanDevices(rows); err != nil {
		return nil, "", err
	}
	if len(devs) == n {
		resume = ""
	}
	return devs, resume, nil
}

// whereClause joins conditions with AND into a WHERE clause, "" for none.
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
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
