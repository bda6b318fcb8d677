package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DetectRule is a detection rule as stored: its id and its JSON document
// (detect.Rule), which the detector validates before it is saved.
type DetectRule struct {
	ID        string          `json:"id"`
	Doc       json.RawMessage `json:"rule"`
	UpdatedAt time.Time       `json:"updatedAt"`
	UpdatedBy string          `json:"updatedBy"`
}

// Rule events in the fleet audit log.
const (
	EventRuleSaved   = "detect.rule_saved"
	EventRuleDeleted = "detect.rule_deleted"
)

// DetectRules lists the rules by id.
func (s *Store) DetectRules(ctx context.Context) ([]DetectRule, error) {
	rows, err := s.query(ctx, "SELECT id, doc, updated_at, updated_by FROM detect_rules ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: list detection rules: %w", err)
	}
	return scanAll(rows, func(r scanner) (*DetectRule, error) {
		var d DetectRule
		var doc string
		if err := r.Scan(&d.ID, &doc, &d.UpdatedAt, &d.UpdatedBy); err != nil {
			return nil, fmt.Errorf("store: read detection rule: %w", err)
		}
		d.Doc = json.RawMessage(doc)
		return &d, nil
	})
}

// SaveDetectRules creates or replaces rules, all in one transaction, and
// records each in the fleet audit log.
func (s *Store) SaveDetectRules(ctx context.Context, rules []DetectRule, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		for _, r := range rules {
			if err := s.saveRule(ctx, t, r, actor); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) saveRule(ctx context.Context, t *txn, r DetectRule, actor string) error {
	if r.ID == "" || len(r.Doc) == 0 {
		return errors.New("store: a detection rule needs an id and a document")
	}
	if _, err := t.exec(ctx, `INSERT INTO detect_rules (id, doc, updated_at, updated_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		r.ID, string(r.Doc), s.clock(), actor); err != nil {
		return fmt.Errorf("store: save detection rule %s: %w", r.ID, err)
	}
	return s.appendFleetEvent(ctx, t, EventRuleSaved, actor, r.Doc)
}

// DeleteDetectRule deletes a rule or returns ErrNotFound.
func (s *Store) DeleteDetectRule(ctx context.Context, id, actor string) error {
	return s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "DELETE FROM detect_rules WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("store: delete detection rule %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: detection rule %s: %w", id, ErrNotFound)
		}
		data, err := eventData(map[string]string{"id": id})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventRuleDeleted, actor, data)
	})
}

// rulesSeededKey marks that the default rules were installed once.
const rulesSeededKey = "rules.seeded"

// SeedDetectRules installs rules once in the database's life: when the
// defaults were seeded before (even if an operator deleted them since) it
// does nothing and reports false.
func (s *Store) SeedDetectRules(ctx context.Context, rules []DetectRule, actor string) (bool, error) {
	seeded := false
	err := s.inTx(ctx, func(t *txn) error {
		var v string
		err := t.queryRow(ctx, "SELECT value FROM detect_settings s WHERE name = ?"+t.d.forUpdate("s"), rulesSeededKey).Scan(&v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: read detection settings: %w", err)
		}
		if _, err := t.exec(ctx, "INSERT INTO detect_settings (name, value) VALUES (?, ?)", rulesSeededKey, s.clock().Format(time.RFC3339)); err != nil {
			return fmt.Errorf("store: mark rules seeded: %w", err)
		}
		for _, r := range rules {
			if err := s.saveRule(ctx, t, r, actor); err != nil {
				return err
			}
		}
		seeded = true
		return nil
	})
	if err != nil && s.d.isUniqueViolation(err) {
		return false, nil // another node seeded them at the same moment
	}
	return seeded, err
}
