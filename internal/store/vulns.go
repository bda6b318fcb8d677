package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EventAdvisoriesImported is the fleet audit log event of an advisory
// import.
const EventAdvisoriesImported = "vulns.imported"

// Advisory is a stored OSV advisory: the record as imported, with the
// fields lists show. Package vuln parses Doc.
type Advisory struct {
	ID         string    `json:"id"`
	Modified   time.Time `json:"modified"`
	Summary    string    `json:"summary,omitempty"`
	Source     string    `json:"source"`
	ImportedAt time.Time `json:"importedAt"`
	ImportedBy string    `json:"importedBy"`
	// Packages are the affected package names, lowercased, each with its
	// ecosystem.
	Packages []AdvisoryPackage `json:"packages"`
	Doc      string            `json:"-"`
}

// AdvisoryPackage is one package an advisory affects.
type AdvisoryPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// AdvisoryImport is what an import changed.
type AdvisoryImport struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Removed counts advisories a replacing import dropped.
	Removed int `json:"removed"`
}

// ImportAdvisories stores advisories in one transaction: a new id is
// added, a known one is replaced when its document changed. With replace,
// advisories not in advs are removed, so the stored set becomes exactly
// advs. The import is recorded in the fleet audit log with its counts.
func (s *Store) ImportAdvisories(ctx context.Context, advs []Advisory, replace bool, actor string) (AdvisoryImport, error) {
	var res AdvisoryImport
	now := s.clock()
	err := s.inTx(ctx, func(t *txn) error {
		res = AdvisoryImport{}
		old := map[string]string{}
		rows, err := t.query(ctx, "SELECT id, doc FROM advisories")
		if err != nil {
			return fmt.Errorf("store: read advisories: %w", err)
		}
		for rows.Next() {
			var id, doc string
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return fmt.Errorf("store: read advisories: %w", err)
			}
			old[id] = doc
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read advisories: %w", err)
		}
		keep := make(map[string]bool, len(advs))
		for _, a := range advs {
			if keep[a.ID] {
				return fmt.Errorf("store: advisory %s is twice in one import", a.ID)
			}
			keep[a.ID] = true
			doc, known := old[a.ID]
			switch {
			case known && doc == a.Doc:
				res.Unchanged++
				continue
			case known:
				res.Updated++
				if err := deleteAdvisory(ctx, t, a.ID); err != nil {
					return err
				}
			default:
				res.Added++
			}
			if _, err := t.exec(ctx, "INSERT INTO advisories (id, modified, summary, source, imported_at, imported_by, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
				a.ID, a.Modified.UTC(), a.Summary, a.Source, now, actor, a.Doc); err != nil {
				return fmt.Errorf("store: add advisory %s: %w", a.ID, err)
			}
			seen := map[AdvisoryPackage]bool{}
			for _, p := range a.Packages {
				p.Name = strings.ToLower(p.Name)
				if seen[p] {
					continue
				}
				seen[p] = true
				if _, err := t.exec(ctx, "INSERT INTO advisory_packages (name_key, advisory_id, ecosystem) VALUES (?, ?, ?)",
					p.Name, a.ID, p.Ecosystem); err != nil {
					return fmt.Errorf("store: index advisory %s: %w", a.ID, err)
				}
			}
		}
		if replace {
			var gone []string
			for id := range old {
				if !keep[id] {
					gone = append(gone, id)
				}
			}
			slices.Sort(gone)
			for _, id := range gone {
				if err := deleteAdvisory(ctx, t, id); err != nil {
					return err
				}
			}
			res.Removed = len(gone)
		}
		data, err := eventData(struct {
			AdvisoryImport
			Replace bool `json:"replace"`
		}{res, replace})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventAdvisoriesImported, actor, data)
	})
	return res, err
}

func deleteAdvisory(ctx context.Context, t *txn, id string) error {
	if _, err := t.exec(ctx, "DELETE FROM advisory_packages WHERE advisory_id = ?", id); err != nil {
		return fmt.Errorf("store: remove advisory %s: %w", id, err)
	}
	if _, err := t.exec(ctx, "DELETE FROM advisories WHERE id = ?", id); err != nil {
		return fmt.Errorf("store: remove advisory %s: %w", id, err)
	}
	return nil
}

// Advisories returns the stored advisories in id order, with their
// documents when withDocs is set (the matcher needs them; lists do not).
func (s *Store) Advisories(ctx context.Context, withDocs bool) ([]Advisory, error) {
	doc := "''"
	if withDocs {
		doc = "doc"
	}
	rows, err := s.query(ctx, "SELECT id, modified, summary, source, imported_at, imported_by, "+doc+" FROM advisories ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: list advisories: %w", err)
	}
	out, err := scanAll(rows, func(r scanner) (*Advisory, error) {
		var a Advisory
		if err := r.Scan(&a.ID, &a.Modified, &a.Summary, &a.Source, &a.ImportedAt, &a.ImportedBy, &a.Doc); err != nil {
			return nil, err
		}
		a.Modified, a.ImportedAt, a.Packages = a.Modified.UTC(), a.ImportedAt.UTC(), []AdvisoryPackage{}
		return &a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list advisories: %w", err)
	}
	rows, err = s.query(ctx, "SELECT advisory_id, ecosystem, name_key FROM advisory_packages ORDER BY advisory_id, ecosystem, name_key")
	if err != nil {
		return nil, fmt.Errorf("store: list advisory packages: %w", err)
	}
	defer rows.Close()
	at := make(map[string]int, len(out))
	for i, a := range out {
		at[a.ID] = i
	}
	for rows.Next() {
		var id string
		var p AdvisoryPackage
		if err := rows.Scan(&id, &p.Ecosystem, &p.Name); err != nil {
			return nil, fmt.Errorf("store: list advisory packages: %w", err)
		}
		if i, ok := at[id]; ok {
			out[i].Packages = append(out[i].Packages, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list advisory packages: %w", err)
	}
	return out, nil
}
