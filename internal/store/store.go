// Package store persists Muster's registry in SQLite (the embedded default)
// or PostgreSQL (the scale-out store). One implementation serves both: the
// SQL differs only where a dialect says so, and one conformance suite runs
// against both.
//
// Layout: a devices row holds the whole fleet.Device as JSON (doc) plus
// copies of the fields lists filter on; BOMs are stored once per content
// (boms, by SHA-256), byte for byte; side tables (device_groups,
// device_tags, device_attrs, bom_components) index list-valued fields and
// are rewritten with every device write; events holds the hash-chained
// histories, whose heads live on the devices row and in fleet_head.
//
// Lists are keyset-paginated in id order. The store picks the filter that
// drives each list query by counting index entries (see Store.plan) and
// bounds the index entries one request reads, so a page may be short and
// still not the last.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/muster-iot/muster/internal/fleet"
)

// Errors callers compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrDuplicate means a unique key (for example factory+model+serial) is taken.
	ErrDuplicate = errors.New("already exists")
	// ErrVersionMismatch means the record changed since the caller read it.
	ErrVersionMismatch = errors.New("record was changed by someone else; read it again")
	// ErrBadCursor means a pagination cursor was not produced by this store.
	ErrBadCursor = errors.New("invalid cursor")
)

// DeviceFilter selects devices in ListDevices. Empty fields match anything;
// set fields are combined with AND.
type DeviceFilter struct {
	State   fleet.State
	Model   string
	Batch   string
	Owner   string
	Factory string
	Group   string
	Tag     string
	// Attributes matches devices whose attribute key equals value, for every pair.
	Attributes map[string]string
	// SerialPrefix matches serial numbers that start with it (indexed).
	SerialPrefix string
	// Component matches devices whose BOM lists a component with this name.
	Component string
}

// Change is what an update did to a device, recorded as a history event.
type Change struct {
	Type string // a fleet.Event* type
	Data any    // marshalled to JSON into the event
}

// Token is an API credential. Only the SHA-256 of the secret is stored.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Factory   string     `json:"factory,omitempty"` // set for manufacturer tokens
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// BOMComponent is a BOM component together with the device that lists it.
type BOMComponent struct {
	DeviceID string `json:"deviceId"`
	fleet.Component
}

// eventData marshals a change's data for an event; nil data stays empty.
// Raw JSON is kept byte for byte, so it must already be valid JSON in UTF-8:
// the stored bytes are what the event's hash covers.
func eventData(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) == 0 {
			return nil, nil
		}
		if !json.Valid(raw) || !utf8.Valid(raw) {
			return nil, errors.New("store: event data is not valid UTF-8 JSON")
		}
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode event data: %w", err)
	}
	return raw, nil
}
