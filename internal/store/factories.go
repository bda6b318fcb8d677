package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// EventFactoryCreated is the fleet audit log event of a registered factory.
const EventFactoryCreated = "factory.created"

// Factory is a registered manufacturing site: the models it makes, the
// serial numbers it may give them and who issues their birth certificates.
// The store keeps it as given; package mfg validates it and checks rows
// against it.
type Factory struct {
	Name          string    `json:"name"`
	Models        []string  `json:"models"`
	SerialPattern string    `json:"serialPattern"`
	CAMode        string    `json:"caMode"` // managed or external
	CreatedAt     time.Time `json:"createdAt"`
	CreatedBy     string    `json:"createdBy"`
}

// NewFactory is what CreateFactory writes in one transaction: the factory,
// the CA that anchors its birth certificates, and the possession challenge
// the CA's registration used up, if any.
type NewFactory struct {
	Factory *Factory
	// CA is the factory's manufacturing CA (managed) or the maker's CA
	// (external); nil registers the factory without one.
	CA *CA
	// Nonce is the possession challenge to consume; empty for managed CAs.
	Nonce string
}

// factoryAudit is what the fleet audit log records about a new factory.
type factoryAudit struct {
	Name          string   `json:"name"`
	Models        []string `json:"models"`
	SerialPattern string   `json:"serialPattern"`
	CAMode        string   `json:"caMode"`
	CAID          string   `json:"caId,omitempty"`
	CAKeyID       string   `json:"caSubjectKeyId,omitempty"`
}

const factoryCols = "name, models, serial_pattern, ca_mode, created_at, created_by"

// CreateFactory registers nf.Factory, inserts nf.CA, consumes nf.Nonce and
// records factory.created in the fleet audit log, all or nothing. It sets
// CreatedAt and CreatedBy (and the CA's id and timestamps, as InsertCA
// does). A taken name is ErrDuplicate; a nonce that is unknown, used,
// expired or issued for another factory is a *ChallengeError.
func (s *Store) CreateFactory(ctx context.Context, nf NewFactory, actor string) error {
	f := nf.Factory
	if f == nil || f.Name == "" {
		return &fleet.FieldError{Field: "name", Message: "is required"}
	}
	models, err := json.Marshal(f.Models)
	if err != nil {
		return fmt.Errorf("store: encode models of factory %s: %w", f.Name, err)
	}
	now := s.clock()
	var ca CA
	if nf.CA != nil {
		ca = *nf.CA
		if err := s.prepareCA(&ca, now); err != nil {
			return err
		}
	}
	data, err := eventData(factoryAudit{Name: f.Name, Models: f.Models, SerialPattern: f.SerialPattern,
		CAMode: f.CAMode, CAID: ca.ID, CAKeyID: ca.SubjectKeyID})
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "INSERT INTO factories ("+factoryCols+") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
			f.Name, string(models), f.SerialPattern, f.CAMode, now, actor)
		if err != nil {
			return fmt.Errorf("store: create factory %s: %w", f.Name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: create factory %s: %w", f.Name, err)
		} else if n == 0 {
			return fmt.Errorf("store: factory %q is already registered: %w", f.Name, ErrDuplicate)
		}
		if nf.Nonce != "" {
			if err := consumeChallenge(ctx, t, f.Name, nf.Nonce, now); err != nil {
				return err
			}
		}
		if nf.CA != nil {
			if err := insertCA(ctx, t, &ca); err != nil {
				return err
			}
		}
		return s.appendFleetEvent(ctx, t, EventFactoryCreated, actor, data)
	})
	if err != nil {
		return err
	}
	f.CreatedAt, f.CreatedBy = now, actor
	if nf.CA != nil {
		*nf.CA = ca
	}
	return nil
}

// GetFactory returns the factory with the given name, or ErrNotFound.
func (s *Store) GetFactory(ctx context.Context, name string) (*Factory, error) {
	f, err := scanFactory(s.queryRow(ctx, "SELECT "+factoryCols+" FROM factories WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: factory %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read factory %q: %w", name, err)
	}
	return f, nil
}

// ListFactories returns every factory by name.
func (s *Store) ListFactories(ctx context.Context) ([]Factory, error) {
	rows, err := s.query(ctx, "SELECT "+factoryCols+" FROM factories ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: list factories: %w", err)
	}
	out, err := scanAll(rows, scanFactory)
	if err != nil {
		return nil, fmt.Errorf("store: list factories: %w", err)
	}
	return out, nil
}

func scanFactory(r scanner) (*Factory, error) {
	var f Factory
	var models string
	if err := r.Scan(&f.Name, &models, &f.SerialPattern, &f.CAMode, &f.CreatedAt, &f.CreatedBy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(models), &f.Models); err != nil {
		return nil, fmt.Errorf("decode models of factory %s: %w", f.Name, err)
	}
	f.CreatedAt = f.CreatedAt.UTC()
	return &f, nil
}
