package store

import (
	"context"
	"fmt"
)

// Optimize refreshes the statistics query planners use and, on PostgreSQL,
// the visibility map that lets the list planner's counts read indexes
// alone. Run it after loading many devices at once; autovacuum does the
// same on PostgreSQL, but only eventually (and not at all when it is
// switched off).
func (s *Store) Optimize(ctx context.Context) error {
	q := "ANALYZE"
	if s.Backend() == "postgres" {
		q = "VACUUM (ANALYZE) devices, device_groups, device_tags, device_attrs, bom_components, events, boms"
	}
	if _, err := s.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("store: refresh planner statistics: %w", err)
	}
	return nil
}
