package store

import (
	"context"
	"fmt"
)

// CountDevices returns how many devices match f, as ListDevices would list
// them, without reading any device document. An unknown state in f is a
// *fleet.FieldError.
//
// Unlike a list page, a count must visit every match, so no scan window
// bounds it: every condition may use its index and the database's planner
// chooses, which for one filter is a count over that filter's index.
func (s *Store) CountDevices(ctx context.Context, f DeviceFilter) (int64, error) {
	q, err := newListQuery(f)
	if err != nil {
		return 0, err
	}
	if q.empty {
		return 0, nil
	}
	var where []string
	var args []any
	for i := range q.terms {
		t := &q.terms[i]
		if t.table == "devices" {
			where = append(where, t.where("d", asIs))
		} else {
			// IN rather than EXISTS: SQLite then reads the side table's
			// index once instead of probing it for every device, and
			// a device listed twice (a repeated component) counts once.
			where = append(where, "d.id IN (SELECT y.device_id FROM "+t.table+" y WHERE "+t.where("y", asIs)+")")
		}
		args = append(args, t.args...)
	}
	var n int64
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM devices d"+whereClause(where), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count devices: %w", err)
	}
	return n, nil
}
