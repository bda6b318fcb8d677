package store

import (
	"context"
	"fmt"
)

// Optimize refreshes the statistics the query planner uses to pick indexes
// for ListDevices. Run it after loading many devices at once; on PostgreSQL
// autovacuum does it too, but only eventually (and not at all when it is
// switched off).
func (s *Store) Optimize(ctx context.Context) error {
	q := "ANALYZE"
	if s.Backend() == "postgres" {
		q = "ANALYZE devices, device_groups, device_tags, device_attrs, bom_components, events"
	}
	if _, err := s.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("store: refresh planner statistics: %w", err)
	}
	return nil
}
