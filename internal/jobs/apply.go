package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/store"
)

// applier applies one job's operation to chunks of its rows.
type applier struct {
	st        *store.Store
	spec      Spec
	tmpl      *provision.Template // register: the template's scope
	tmplErr   string              // register: why no row can use the template
	revReason int
	actor     string
	jobID     string // recorded in the events the job writes
	now       func() time.Time
}

func newApplier(ctx context.Context, st *store.Store, spec Spec, actor string, now func() time.Time) (*applier, error) {
	a := &applier{st: st, spec: spec, actor: actor, now: now}
	if spec.RevocationReason != "" {
		code, err := revocation.ParseReason(spec.RevocationReason)
		if err != nil {
			return nil, err
		}
		a.revReason = code
	}
	if spec.Op == OpRegister {
		rec, err := st.Template(ctx, spec.Template)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted after the job was queued: its rows fail, the job ends.
			a.tmplErr = fmt.Sprintf("template %s was deleted after the job started; create it again and resubmit the manifest", spec.Template)
			return a, nil
		}
		if err != nil {
			return nil, fmt.Errorf("jobs: template %s: %w", spec.Template, err)
		}
		if a.tmpl, err = provision.ParseTemplate(rec.Doc); err != nil {
			return nil, fmt.Errorf("jobs: template %s: %w", spec.Template, err)
		}
	}
	return a, nil
}

// work is one chunk, prepared outside the transaction that applies it.
type work struct {
	rows     []storedRow
	firstRow int64
	results  []RowResult
	// refs[i] names row i's device; valid[i] is false for rows refused
	// before the transaction (their result is set already).
	refs  []store.DeviceRef
	valid []bool
	// register: the devices to insert, and the index in prep of row i.
	want []*fleet.Device
	prep *store.PreparedDevices
	at   []int
}

// prepare checks each row and does what needs no transaction: parse
// errors, missing fields, and for register building, validating and
// encoding the new devices.
func (a *applier) prepare(rows []storedRow, firstRow int64) *work {
	w := &work{rows: rows, firstRow: firstRow, results: make([]RowResult, len(rows)),
		refs: make([]store.DeviceRef, len(rows)), valid: make([]bool, len(rows))}
	def := a.spec.Defaults
	for i, r := range rows {
		w.results[i] = RowResult{Row: firstRow + int64(i), Line: r.Line, Serial: r.Serial, DeviceID: r.ID}
		if r.Code != "" {
			w.fail(i, r.Code, r.Error)
			continue
		}
		ref := store.DeviceRef{ID: r.ID, Factory: or(r.Factory, def.Factory), Model: or(r.Model, def.Model), Serial: r.Serial}
		switch {
		case a.spec.Op == OpRegister && r.ID != "":
			w.fail(i, CodeValidation, "id: a register row names its device by serial, model and factory; the id is assigned")
			continue
		case ref.ID == "" && (ref.Serial == "" || ref.Model == "" || ref.Factory == ""):
			w.fail(i, CodeValidation, "the row names no device: give id, or serial with model and factory (or set the job's --model and --factory)")
			continue
		}
		if a.spec.Op == OpState {
			target := or(r.State, string(a.spec.State))
			if target == "" {
				w.fail(i, CodeValidation, "state: the row names no state and the job has no default state")
				continue
			}
			if _, err := targetState(target); err != nil {
				w.fail(i, CodeValidation, "state: "+err.Error())
				continue
			}
		}
		if len(r.Reason) > fleet.MaxTextLen {
			w.fail(i, CodeValidation, fmt.Sprintf("reason: is longer than %d characters", fleet.MaxTextLen))
			continue
		}
		w.refs[i], w.valid[i] = ref, true
	}
	if a.spec.Op == OpRegister {
		a.prepareRegister(w)
	}
	return w
}

func (w *work) fail(i int, code, msg string) {
	w.results[i].Status, w.results[i].Code, w.results[i].Message = StatusError, code, msg
}

// prepareRegister builds and validates the new devices of a register chunk.
func (a *applier) prepareRegister(w *work) {
	w.at = make([]int, len(w.rows))
	for i, r := range w.rows {
		w.at[i] = -1
		if !w.valid[i] {
			continue
		}
		if a.tmplErr != "" {
			w.valid[i] = false
			w.fail(i, CodeTemplate, a.tmplErr)
			continue
		}
		d := a.newDevice(r.ManifestRow, w.refs[i])
		if t := a.tmpl; (len(t.Factories) > 0 && !slices.Contains(t.Factories, d.Identity.Factory)) ||
			(len(t.Models) > 0 && !slices.Contains(t.Models, d.Identity.Model)) {
			// The same scope the provisioning pipeline enforces: a device
			// the template does not serve could never provision with it.
			w.valid[i] = false
			w.fail(i, CodeTemplate, fmt.Sprintf("template %s does not serve factory %q model %q", t.Name, d.Identity.Factory, d.Identity.Model))
			continue
		}
		w.at[i] = len(w.want)
		w.want = append(w.want, d)
	}
	w.prep = a.st.PrepareDevices(w.want, a.actor)
	for i := range w.rows {
		if w.at[i] < 0 {
			continue
		}
		if err := w.prep.Err(w.at[i]); err != nil {
			w.valid[i] = false
			w.fail(i, CodeValidation, errorMessage(err))
		}
	}
}

// newDevice is the device a register row asks for: the row over the job's
// defaults, provisioning with the job's template.
func (a *applier) newDevice(r ManifestRow, ref store.DeviceRef) *fleet.Device {
	def := a.spec.Defaults
	d := &fleet.Device{
		Identity: fleet.Identity{Serial: ref.Serial, Model: ref.Model, Factory: ref.Factory,
			HardwareRevision: r.HardwareRevision, Batch: or(r.Batch, def.Batch)},
		Inventory: fleet.Inventory{Owner: or(r.Owner, def.Owner), Location: fleet.Location{Site: or(r.Site, def.Site)},
			Groups: union(def.Groups, r.Groups), Tags: union(def.Tags, r.Tags)},
		Attributes: map[string]string{},
	}
	maps.Copy(d.Attributes, def.Attributes)
	maps.Copy(d.Attributes, r.Attributes)
	d.Attributes[provision.AttrTemplate] = a.spec.Template
	return d
}

// apply makes the chunk's changes inside tx and returns its outcome.
// Row errors become results; any other error fails the whole chunk, which
// then changes nothing and is retried.
func (a *applier) apply(ctx context.Context, tx *store.JobTx, w *work) (*store.JobChunkOutcome, error) {
	var err error
	if a.spec.Op == OpRegister {
		err = a.applyRegister(ctx, tx, w)
	} else {
		err = a.applyToExisting(ctx, tx, w)
	}
	if err != nil {
		return nil, err
	}
	out := &store.JobChunkOutcome{}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range w.results {
		switch w.results[i].Status {
		case StatusOK:
			out.OK++
		case StatusUnchanged:
			out.Unchanged++
		default:
			out.Errs++
		}
		if err := enc.Encode(&w.results[i]); err != nil {
			return nil, fmt.Errorf("jobs: encode result: %w", err)
		}
	}
	out.Results = buf.Bytes()
	return out, nil
}

func (a *applier) applyRegister(ctx context.Context, tx *store.JobTx, w *work) error {
	devs, inserted, err := tx.InsertDevices(ctx, w.prep)
	if err != nil {
		return err
	}
	for i := range w.rows {
		if !w.valid[i] {
			continue
		}
		k := w.at[i]
		res := &w.results[i]
		res.DeviceID = devs[k].ID
		switch {
		case inserted[k]:
			res.Status = StatusOK
		case sameRegistration(devs[k], w.want[k]):
			res.Status = StatusUnchanged
		default:
			w.fail(i, CodeConflict, fmt.Sprintf("serial %s is registered already as device %s with different data; use an update job to change it", w.want[k].Identity.Serial, devs[k].ID))
		}
	}
	return nil
}

// sameRegistration reports whether the stored device has everything a
// register row would give it, so registering it again changes nothing.
func sameRegistration(have, want *fleet.Device) bool {
	eq := func(want, have string) bool { return want == "" || want == have }
	if !eq(want.Identity.HardwareRevision, have.Identity.HardwareRevision) || !eq(want.Identity.Batch, have.Identity.Batch) ||
		!eq(want.Inventory.Owner, have.Inventory.Owner) || !eq(want.Inventory.Location.Site, have.Inventory.Location.Site) {
		return false
	}
	for _, g := range want.Inventory.Groups {
		if !slices.Contains(have.Inventory.Groups, g) {
			return false
		}
	}
	for _, g := range want.Inventory.Tags {
		if !slices.Contains(have.Inventory.Tags, g) {
			return false
		}
	}
	for k, v := range want.Attributes {
		if have.Attributes[k] != v {
			return false
		}
	}
	return true
}

// applyToExisting runs update, state, revoke and reprovision rows.
func (a *applier) applyToExisting(ctx context.Context, tx *store.JobTx, w *work) error {
	refs := make([]store.DeviceRef, 0, len(w.rows))
	idx := make([]int, 0, len(w.rows))
	for i := range w.rows {
		if w.valid[i] {
			refs = append(refs, w.refs[i])
			idx = append(idx, i)
		}
	}
	devs, err := tx.Devices(ctx, refs)
	if err != nil {
		return err
	}
	seen := make(map[string]int, len(devs))
	now := a.now().UTC()
	for k, d := range devs {
		i := idx[k]
		res := &w.results[i]
		if d == nil {
			w.fail(i, CodeNotFound, "no device matches the row")
			continue
		}
		res.DeviceID, res.Serial = d.ID, d.Identity.Serial
		if first, dup := seen[d.ID]; dup {
			// Two rows for one device would make the outcome depend on
			// their order; the first one counts.
			w.fail(i, CodeDuplicate, fmt.Sprintf("row %d names the same device", w.results[first].Row))
			continue
		}
		seen[d.ID] = i
		if a.spec.Op == OpRevoke {
			n, err := tx.RevokeDeviceCertificates(ctx, d.ID, a.revReason)
			if err != nil {
				return err
			}
			if n == 0 {
				res.Status, res.Message = StatusUnchanged, "no certificate left to revoke"
			} else {
				res.Status, res.Message = StatusOK, fmt.Sprintf("revoked %d certificates", n)
			}
			continue
		}
		changed := false
		row := w.rows[i].ManifestRow
		_, err := tx.UpdateDevice(ctx, d.ID, func(d *fleet.Device) (*store.Change, error) {
			ch, err := a.change(d, row, now)
			changed = ch != nil && err == nil
			return ch, err
		})
		var fe *fleet.FieldError
		var te *fleet.TransitionError
		switch {
		case errors.As(err, &te):
			w.fail(i, CodeTransition, te.Error())
		case errors.As(err, &fe):
			w.fail(i, CodeValidation, errorMessage(fe))
		case err != nil:
			return err
		case changed:
			res.Status = StatusOK
		default:
			res.Status = StatusUnchanged
		}
	}
	return nil
}

// stateChange is the event data of a job's state change, as the API's.
type stateChange struct {
	From   fleet.State `json:"from"`
	To     fleet.State `json:"to"`
	Reason string      `json:"reason,omitempty"`
	Job    string      `json:"job"`
}

// change applies a row of an update, state or reprovision job to d; nil
// when d has the change already.
func (a *applier) change(d *fleet.Device, r ManifestRow, now time.Time) (*store.Change, error) {
	reason := or(r.Reason, a.spec.Reason)
	switch a.spec.Op {
	case OpState:
		to := fleet.State(or(r.State, string(a.spec.State)))
		if d.Lifecycle.State == to {
			return nil, nil
		}
		ch, err := d.Move(to, a.actor, reason, now)
		if err != nil {
			return nil, err
		}
		return &store.Change{Type: fleet.EventStateChanged, Data: stateChange{From: ch.From, To: ch.To, Reason: reason, Job: a.jobID}}, nil
	case OpReprovision:
		tmplChange := a.spec.Template != "" && d.Attributes[provision.AttrTemplate] != a.spec.Template
		if d.Lifecycle.State == fleet.StateReprovisioning && !tmplChange {
			return nil, nil
		}
		if tmplChange {
			if d.Attributes == nil {
				d.Attributes = map[string]string{}
			}
			d.Attributes[provision.AttrTemplate] = a.spec.Template
		}
		if d.Lifecycle.State == fleet.StateReprovisioning {
			return &store.Change{Type: fleet.EventUpdated, Data: map[string]any{"attributes": map[string]string{provision.AttrTemplate: a.spec.Template}, "job": a.jobID}}, nil
		}
		ch, err := d.Move(fleet.StateReprovisioning, a.actor, reason, now)
		if err != nil {
			return nil, err
		}
		return &store.Change{Type: fleet.EventStateChanged, Data: stateChange{From: ch.From, To: ch.To, Reason: reason, Job: a.jobID}}, nil
	}
	return a.update(d, r)
}

// update applies an update row: owner and site set, attributes merged
// (an empty value removes one), groups and tags added.
func (a *applier) update(d *fleet.Device, r ManifestRow) (*store.Change, error) {
	def := a.spec.Defaults
	changed := map[string]any{}
	if owner := or(r.Owner, def.Owner); owner != "" && owner != d.Inventory.Owner {
		d.Inventory.Owner = owner
		changed["owner"] = owner
	}
	if site := or(r.Site, def.Site); site != "" && site != d.Inventory.Location.Site {
		d.Inventory.Location.Site = site
		changed["site"] = site
	}
	attrs := maps.Clone(def.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, r.Attributes)
	setAttrs := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		have, ok := d.Attributes[k]
		switch {
		case v == "" && ok:
			delete(d.Attributes, k)
		case v != "" && (!ok || have != v):
			if d.Attributes == nil {
				d.Attributes = map[string]string{}
			}
			d.Attributes[k] = v
		default:
			continue
		}
		setAttrs[k] = v
	}
	if len(setAttrs) > 0 {
		changed["attributes"] = setAttrs
	}
	for name, list := range map[string]*[]string{"groups": &d.Inventory.Groups, "tags": &d.Inventory.Tags} {
		add := r.Groups
		base := def.Groups
		if name == "tags" {
			add, base = r.Tags, def.Tags
		}
		var added []string
		for _, g := range union(base, add) {
			if !slices.Contains(*list, g) {
				*list = append(*list, g)
				added = append(added, g)
			}
		}
		if len(added) > 0 {
			changed[name] = added
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	changed["job"] = a.jobID
	return &store.Change{Type: fleet.EventUpdated, Data: changed}, nil
}

// errorMessage is a row error's message: a field error names its field.
func errorMessage(err error) string {
	var fe *fleet.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		return fe.Field + ": " + fe.Message
	}
	return err.Error()
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// union is a followed by the items of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
