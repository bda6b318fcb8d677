package store

import (
	"context"
	"database/sql"
	"fmt"
)

// DeviceStatuses returns the statuses of those devices among ids that
// exist, in no particular order, in a few queries however many ids there
// are. The gateway re-reads its live sessions' devices with it when it
// hears that many devices changed at once (a bulk job's transaction, or a
// reconnection to the notification feed).
func (s *Store) DeviceStatuses(ctx context.Context, ids []string) ([]DeviceStatus, error) {
	var out []DeviceStatus
	err := queryIn(ctx, s.query, statusSelect+" WHERE id", ids, "", func(rows *sql.Rows) error {
		part, err := scanStatuses(rows)
		out = append(out, part...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read device statuses: %w", err)
	}
	return out, nil
}
