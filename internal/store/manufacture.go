package store

import (
	"context"
	"errors"

	"github.com/muster-iot/muster/internal/fleet"
)

// ManufactureItem is one unit off the line: its device record and its
// birth certificate.
type ManufactureItem struct {
	Device *fleet.Device
	// Cert is the unit's birth certificate; nil registers the device
	// without one. ManufactureDevices sets its DeviceID and CreatedAt.
	Cert *Certificate
}

// ManufactureDevices registers manufactured units in one transaction: the
// new devices, their device.created events and their birth certificates,
// all or nothing. It is CreateDevices with certificates: a unit whose
// factory, model and serial are registered already (or that repeats an
// earlier item) is not inserted, its certificate is dropped, inserted[i] is
// false and *items[i].Device becomes the stored record. A certificate whose
// public key belongs to another device fails the call with a
// *KeyReuseError whose Index is the item's; nothing is written then, so the
// caller can drop that item and call again.
func (s *Store) ManufactureDevices(ctx context.Context, items []ManufactureItem, actor string) (inserted []bool, err error) {
	ds := make([]*fleet.Device, len(items))
	for i, it := range items {
		ds[i] = it.Device
	}
	return s.createDevices(ctx, ds, actor, func(ctx context.Context, t *txn, created []*fleet.Device) error {
		now := s.clock()
		certs := make([]Certificate, 0, len(items))
		index := make([]int, 0, len(items))
		for i, d := range created {
			if d == nil || items[i].Cert == nil {
				continue
			}
			c := *items[i].Cert
			c.DeviceID, c.CreatedAt = d.ID, now
			certs = append(certs, c)
			index = append(index, i)
		}
		err := insertCertificates(ctx, t, certs)
		if kr, ok := errors.AsType[*KeyReuseError](err); ok {
			return &KeyReuseError{Index: index[kr.Index], Fingerprint: kr.Fingerprint, Owner: kr.Owner}
		}
		return err
	})
}

// ExistingDevices returns, for each device of ds, the registered device
// with its factory, model and serial, or nil when there is none.
func (s *Store) ExistingDevices(ctx context.Context, ds []*fleet.Device) ([]*fleet.Device, error) {
	keys := make([]devKey, len(ds))
	for i, d := range ds {
		keys[i] = keyOf(d)
	}
	found, err := findByKeys(ctx, s.query, keys)
	if err != nil {
		return nil, err
	}
	out := make([]*fleet.Device, len(ds))
	for i, k := range keys {
		out[i] = found[k]
	}
	return out, nil
}
