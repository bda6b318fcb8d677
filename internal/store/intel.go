package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IntelFeed is a named set of threat-intelligence indicators, replaced
// whole by each import.
type IntelFeed struct {
	Name        string    `json:"name"`
	Format      string    `json:"format"`
	Description string    `json:"description,omitempty"`
	Indicators  int64     `json:"indicators"`
	Version     int64     `json:"version"`
	ImportedAt  time.Time `json:"importedAt"`
	ImportedBy  string    `json:"importedBy"`
}

// IntelIndicator is one indicator of a feed: an ip, a cidr range or a
// domain.
type IntelIndicator struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Name  string `json:"name,omitempty"`
}

// EventIntelImported records a feed import in the fleet audit log.
const EventIntelImported = "intel.feed_imported"

// EventIntelDeleted records a feed's deletion in the fleet audit log.
const EventIntelDeleted = "intel.feed_deleted"

const intelBatch = 500

// ReplaceIntelFeed replaces the indicators of feed f.Name with inds in one
// transaction, so a reader sees either the old set or the new one, and
// records the import in the fleet audit log. It returns the feed as
// stored (version incremented).
func (s *Store) ReplaceIntelFeed(ctx context.Context, f IntelFeed, inds []IntelIndicator, actor string) (*IntelFeed, error) {
	if f.Name == "" || len(inds) == 0 {
		return nil, errors.New("store: an intel feed needs a name and at least one indicator")
	}
	out := f
	out.Indicators, out.ImportedAt, out.ImportedBy = int64(len(inds)), s.clock(), actor
	err := s.inTx(ctx, func(t *txn) error {
		var v int64
		err := t.queryRow(ctx, "SELECT version FROM intel_feeds f WHERE name = ?"+t.d.forUpdate("f"), f.Name).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: read intel feed %s: %w", f.Name, err)
		}
		out.Version = v + 1
		if _, err := t.exec(ctx, `INSERT INTO intel_feeds (name, format, description, indicators, version, imported_at, imported_by)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET format = excluded.format, description = excluded.description,
			indicators = excluded.indicators, version = excluded.version, imported_at = excluded.imported_at, imported_by = excluded.imported_by`,
			out.Name, out.Format, out.Description, out.Indicators, out.Version, out.ImportedAt, out.ImportedBy); err != nil {
			return fmt.Errorf("store: save intel feed %s: %w", f.Name, err)
		}
		if _, err := t.exec(ctx, "DELETE FROM intel_indicators WHERE feed = ?", f.Name); err != nil {
			return fmt.Errorf("store: clear intel feed %s: %w", f.Name, err)
		}
		for rest := inds; len(rest) > 0; {
			n := min(len(rest), intelBatch)
			var q strings.Builder
			q.WriteString("INSERT INTO intel_indicators (feed, type, value, name) VALUES ")
			args := make([]any, 0, 4*n)
			for i, ind := range rest[:n] {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, ?, ?)")
				args = append(args, f.Name, ind.Type, ind.Value, ind.Name)
			}
			// A value listed twice keeps its first name.
			q.WriteString(" ON CONFLICT DO NOTHING")
			if _, err := t.exec(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("store: save indicators of feed %s: %w", f.Name, err)
			}
			rest = rest[n:]
		}
		data, err := eventData(map[string]any{"feed": out.Name, "format": out.Format, "indicators": out.Indicators, "version": out.Version})
		if err != nil {
			return err
		}
		if err := bumpIntelRevision(ctx, t); err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventIntelImported, actor, data)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

const intelFeedCols = "name, format, description, indicators, version, imported_at, imported_by"

func scanIntelFeed(r scanner) (*IntelFeed, error) {
	var f IntelFeed
	if err := r.Scan(&f.Name, &f.Format, &f.Description, &f.Indicators, &f.Version, &f.ImportedAt, &f.ImportedBy); err != nil {
		return nil, fmt.Errorf("store: read intel feed: %w", err)
	}
	return &f, nil
}

// IntelFeeds lists the feeds by name.
func (s *Store) IntelFeeds(ctx context.Context) ([]IntelFeed, error) {
	rows, err := s.query(ctx, "SELECT "+intelFeedCols+" FROM intel_feeds ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: list intel feeds: %w", err)
	}
	return scanAll(rows, scanIntelFeed)
}

// IntelIndicators returns every indicator of a feed, ordered by type and
// value; an unknown feed has none.
func (s *Store) IntelIndicators(ctx context.Context, feed string) ([]IntelIndicator, error) {
	rows, err := s.query(ctx, "SELECT type, value, name FROM intel_indicators WHERE feed = ? ORDER BY type, value", feed)
	if err != nil {
		return nil, fmt.Errorf("store: read indicators of feed %s: %w", feed, err)
	}
	return scanAll(rows, func(r scanner) (*IntelIndicator, error) {
		var i IntelIndicator
		if err := r.Scan(&i.Type, &i.Value, &i.Name); err != nil {
			return nil, fmt.Errorf("store: read indicator: %w", err)
		}
		return &i, nil
	})
}

// DeleteIntelFeed removes a feed and its indicators, or returns
// ErrNotFound.
func (s *Store) DeleteIntelFeed(ctx context.Context, name, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "DELETE FROM intel_feeds WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("store: delete intel feed %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: intel feed %s: %w", name, ErrNotFound)
		}
		if _, err := t.exec(ctx, "DELETE FROM intel_indicators WHERE feed = ?", name); err != nil {
			return fmt.Errorf("store: delete indicators of feed %s: %w", name, err)
		}
		data, err := eventData(map[string]any{"feed": name})
		if err != nil {
			return err
		}
		if err := bumpIntelRevision(ctx, t); err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventIntelDeleted, actor, data)
	})
}

// IntelRevision changes whenever any feed is imported or deleted; nodes
// poll it to know when to reload their indicators.
func (s *Store) IntelRevision(ctx context.Context) (int64, error) {
	var v string
	err := s.queryRow(ctx, "SELECT value FROM detect_settings WHERE name = ?", intelRevisionKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read intel revision: %w", err)
	}
	var n int64
	_, err = fmt.Sscan(v, &n)
	return n, err
}

const intelRevisionKey = "intel.revision"

// bumpIntelRevision advances the revision inside t.
func bumpIntelRevision(ctx context.Context, t *txn) error {
	var v string
	err := t.queryRow(ctx, "SELECT value FROM detect_settings s WHERE name = ?"+t.d.forUpdate("s"), intelRevisionKey).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: read intel revision: %w", err)
	}
	var n int64
	fmt.Sscan(v, &n)
	if _, err := t.exec(ctx, "INSERT INTO detect_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
		intelRevisionKey, fmt.Sprint(n+1)); err != nil {
		return fmt.Errorf("store: advance intel revision: %w", err)
	}
	return nil
}
