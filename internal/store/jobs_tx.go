package store

import (
	"context"
	"database/sql"
	"runtime"
	"slices"
	"sync"

	"github.com/muster-iot/muster/internal/fleet"
)

// JobTx is the transaction a bulk job applies one chunk in (see
// ApplyJobChunk): the device writes a job makes, committed together with
// the chunk's results or not at all. It is valid only inside apply.
type JobTx struct {
	s     *Store
	t     *txn
	actor string
}

// DeviceRef names a device by id or, when ID is empty, by factory, model
// and serial.
type DeviceRef struct {
	ID, Factory, Model, Serial string
}

// Devices returns the stored device each ref names, nil where there is
// none, with two queries at most whatever the number of refs.
func (j *JobTx) Devices(ctx context.Context, refs []DeviceRef) ([]*fleet.Device, error) {
	var ids []string
	var keys []devKey
	for _, r := range refs {
		if r.ID != "" {
			ids = append(ids, r.ID)
		} else {
			keys = append(keys, devKey{r.Factory, r.Model, r.Serial})
		}
	}
	byKey, err := findByKeys(ctx, j.t.query, keys)
	if err != nil {
		return nil, err
	}
	byID := map[string]*fleet.Device{}
	err = queryIn(ctx, j.t.query, deviceSelect+" WHERE d.id", ids, "", func(rows *sql.Rows) error {
		devs, err := scanDevices(rows)
		for _, d := range devs {
			byID[d.ID] = d
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]*fleet.Device, len(refs))
	for i, r := range refs {
		if r.ID != "" {
			out[i] = byID[r.ID]
		} else {
			out[i] = byKey[devKey{r.Factory, r.Model, r.Serial}]
		}
	}
	return out, nil
}

// UpdateDevice is Store.UpdateDevice inside the job's transaction. fn's
// errors come back unchanged and write nothing.
func (j *JobTx) UpdateDevice(ctx context.Context, id string, fn func(*fleet.Device) (*Change, error)) (*fleet.Device, error) {
	return j.s.updateInTx(ctx, j.t, id, 0, j.actor, fn)
}

// RevokeDeviceCertificates is Store.RevokeDeviceCertificates inside the
// job's transaction.
func (j *JobTx) RevokeDeviceCertificates(ctx context.Context, id string, reason int) (int, error) {
	if err := checkRevocationReason(reason); err != nil {
		return 0, err
	}
	return j.s.revokeDeviceInTx(ctx, j.t, id, reason, j.actor)
}

// PreparedDevices are new devices validated and encoded ahead of the
// transaction that inserts them, so the transaction carries only writes.
type PreparedDevices struct {
	ds   []*fleet.Device
	nds  []*newDevice
	errs []error
}

// PrepareDevices validates and encodes ds for JobTx.InsertDevices on all
// cores. A device that fails validation has Err(i) set and is skipped by
// the insert; the others are unaffected.
func (s *Store) PrepareDevices(ds []*fleet.Device, actor string) *PreparedDevices {
	now := s.clock()
	p := &PreparedDevices{ds: ds, nds: make([]*newDevice, len(ds)), errs: make([]error, len(ds))}
	ids := make([]string, len(ds))
	for i := range ids {
		ids[i] = fleet.NewID("dev_", now)
	}
	// Ascending ids append to the id indexes instead of inserting all over.
	slices.Sort(ids)
	workers := min(runtime.GOMAXPROCS(0), max(1, len(ds)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			boms := bomCache{}
			for i := w; i < len(ds); i += workers {
				p.nds[i], p.errs[i] = prepareNew(ds[i], ids[i], actor, now, boms)
			}
		})
	}
	wg.Wait()
	return p
}

// Err is why device i cannot be registered, or nil.
func (p *PreparedDevices) Err(i int) error { return p.errs[i] }

// InsertDevices registers the valid prepared devices that are not
// registered yet (by factory, model and serial) inside the job's
// transaction. out[i] is device i's new record when inserted[i], else the
// record registered already (by an earlier entry of the same batch, too),
// or nil when device i is invalid.
func (j *JobTx) InsertDevices(ctx context.Context, p *PreparedDevices) (out []*fleet.Device, inserted []bool, err error) {
	n := len(p.ds)
	out, inserted = make([]*fleet.Device, n), make([]bool, n)
	keys := make([]devKey, 0, n)
	for i, nd := range p.nds {
		if p.errs[i] == nil {
			keys = append(keys, keyOf(nd.rec.dev))
		}
	}
	found, err := findByKeys(ctx, j.t.query, keys)
	if err != nil {
		return nil, nil, err
	}
	fresh := make([]*newDevice, 0, n)
	for i, nd := range p.nds {
		if p.errs[i] != nil {
			continue
		}
		k := keyOf(nd.rec.dev)
		if d := found[k]; d != nil {
			out[i] = d
			continue
		}
		fresh = append(fresh, nd)
		inserted[i] = true
		out[i] = nd.rec.dev
		found[k] = nd.rec.dev // a later entry with the same key finds this one
	}
	if err := insertNew(ctx, j.t, fresh); err != nil {
		return nil, nil, err
	}
	return out, inserted, nil
}
