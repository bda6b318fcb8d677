package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/notify"
)

// Fleet audit log events of provisioning templates.
const (
	EventTemplateCreated = "template.created"
	EventTemplateUpdated = "template.updated"
	EventTemplateDeleted = "template.deleted"
)

// TemplateRecord is one version of a provisioning template. The store keeps
// the document as opaque JSON: package provision parses and validates it.
type TemplateRecord struct {
	Name      string          `json:"name"`
	Version   int64           `json:"version"`
	Doc       json.RawMessage `json:"template"`
	CreatedAt time.Time       `json:"createdAt"`
	CreatedBy string          `json:"createdBy"`
}

// templateAudit is what the fleet audit log records about a template.
type templateAudit struct {
	Name    string `json:"name"`
	Version int64  `json:"version,omitempty"`
}

// PutTemplate stores doc as the next version of template name and records
// it in the fleet audit log. With create set, an existing (not deleted)
// template is ErrDuplicate; without it, a missing one is ErrNotFound. A
// deleted template's name can be created again; its versions continue, so
// a (name, version) pair always means one document.
func (s *Store) PutTemplate(ctx context.Context, name string, doc json.RawMessage, create bool, actor string) (*TemplateRecord, error) {
	if !json.Valid(doc) {
		return nil, errors.New("store: template document is not valid JSON")
	}
	now := s.clock()
	rec := &TemplateRecord{Name: name, Doc: doc, CreatedAt: now, CreatedBy: actor}
	err := s.inTx(ctx, func(t *txn) error {
		var last int64
		var deleted sql.NullTime
		err := t.queryRow(ctx, "SELECT version, deleted_at FROM templates t WHERE name = ? ORDER BY version DESC LIMIT 1"+t.d.forUpdate("t"), name).Scan(&last, &deleted)
		live := err == nil && !deleted.Valid
		switch {
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: read template %s: %w", name, err)
		case create && live:
			return fmt.Errorf("store: template %s exists already: %w", name, ErrDuplicate)
		case !create && !live:
			return fmt.Errorf("store: template %s: %w", name, ErrNotFound)
		}
		rec.Version = last + 1
		t.notice(notify.Templates, name)
		if _, err := t.exec(ctx, "INSERT INTO templates (name, version, doc, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
			name, rec.Version, string(doc), now, actor); err != nil {
			return fmt.Errorf("store: write template %s: %w", name, err)
		}
		typ := EventTemplateUpdated
		if create {
			typ = EventTemplateCreated
		}
		data, err := eventData(templateAudit{Name: name, Version: rec.Version})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, typ, actor, data)
	})
	if err != nil {
		if s.d.isUniqueViolation(err) {
			return nil, fmt.Errorf("store: template %s was changed concurrently: %w", name, ErrVersionMismatch)
		}
		return nil, err
	}
	return rec, nil
}

const templateCols = "name, version, doc, created_at, created_by"

func scanTemplate(r scanner) (*TemplateRecord, error) {
	var rec TemplateRecord
	var doc string
	if err := r.Scan(&rec.Name, &rec.Version, &doc, &rec.CreatedAt, &rec.CreatedBy); err != nil {
		return nil, err
	}
	rec.Doc = json.RawMessage(doc)
	rec.CreatedAt = rec.CreatedAt.UTC()
	return &rec, nil
}

// Template returns the newest version of a template that is not deleted,
// or ErrNotFound.
func (s *Store) Template(ctx context.Context, name string) (*TemplateRecord, error) {
	rec, err := scanTemplate(s.queryRow(ctx, "SELECT "+templateCols+
		" FROM templates WHERE name = ? AND deleted_at IS NULL ORDER BY version DESC LIMIT 1", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: template %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read template %s: %w", name, err)
	}
	return rec, nil
}

// ListTemplates returns the newest version of every template that is not
// deleted, by name.
func (s *Store) ListTemplates(ctx context.Context) ([]TemplateRecord, error) {
	rows, err := s.query(ctx, "SELECT "+templateCols+" FROM templates t WHERE deleted_at IS NULL AND version = "+
		"(SELECT MAX(version) FROM templates u WHERE u.name = t.name) ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: list templates: %w", err)
	}
	out, err := scanAll(rows, scanTemplate)
	if err != nil {
		return nil, fmt.Errorf("store: list templates: %w", err)
	}
	return out, nil
}

// DeleteTemplate hides every version of a template from new provisioning;
// certificates issued under it keep naming it. A missing or deleted
// template is ErrNotFound.
func (s *Store) DeleteTemplate(ctx context.Context, name, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		t.notice(notify.Templates, name)
		res, err := t.exec(ctx, "UPDATE templates SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL", s.clock(), name)
		if err != nil {
			return fmt.Errorf("store: delete template %s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("store: template %s: %w", name, ErrNotFound)
		}
		data, err := eventData(templateAudit{Name: name})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventTemplateDeleted, actor, data)
	})
}
