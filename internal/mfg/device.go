package mfg

import (
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Device builds the device record of a manufactured unit from its row: state
// manufactured, identity (factory f, batch batchID unless the row names its
// own), QC, assembly and BOM (the row's, or its model's from boms), firmware
// and attributes. It validates the record and checks the row against the
// factory's scope. Every failure is a *RowError; a row that could not be
// parsed returns its Row.Err. f must not be nil.
//
// The record gets a fresh id; a processor that finds the serial already
// registered keeps the stored device instead.
func (r Row) Device(f *Factory, batchID string, now time.Time, boms BOMSet) (*fleet.Device, error) {
	if r.Err != nil {
		return nil, r.Err
	}
	rowErr := func(code string, err error) *RowError {
		e := &RowError{Line: r.Line, Serial: r.Serial, Code: code, Message: err.Error(), Err: err}
		var fe *fleet.FieldError
		var se *ScopeError
		switch {
		case errors.As(err, &fe):
			e.Field = fe.Field
		case errors.As(err, &se):
			e.Field = "identity." + se.Field
		}
		return e
	}
	batch := r.Batch
	if batch == "" {
		batch = batchID
	}
	d := &fleet.Device{
		ID:        fleet.NewID("dev_", now),
		CreatedAt: now,
		UpdatedAt: now,
		Identity: fleet.Identity{
			Serial:           r.Serial,
			Model:            r.Model,
			HardwareRevision: r.HardwareRevision,
			Factory:          f.Name,
			Batch:            batch,
		},
		Manufacturing: fleet.Manufacturing{QC: r.QC, Assembly: r.Assembly},
		Provisioning:  fleet.Provisioning{Firmware: r.Firmware},
		Lifecycle: fleet.Lifecycle{
			State:          fleet.StateManufactured,
			StateChangedAt: now,
			Changes: []fleet.StateChange{{
				To: fleet.StateManufactured, At: now,
				Actor: "factory/" + f.Name, Reason: "manufacturing batch " + batchID,
			}},
		},
		Attributes: r.Attributes,
	}
	// The BOM is attached after fleet.Validate, which would otherwise parse
	// a model's shared BOM again for every one of its rows; a row's own BOM
	// is parsed here instead, under its own error code.
	if err := fleet.Validate(d); err != nil {
		return nil, rowErr(CodeValidation, err)
	}
	if err := f.CheckRow(r.Model, r.Serial); err != nil {
		var se *ScopeError
		if !errors.As(err, &se) {
			return nil, rowErr(CodeInternal, err)
		}
		return nil, rowErr(CodeScope, err)
	}
	switch doc, ok := boms.For(r.Model); {
	case len(r.BOM) > 0:
		if _, err := fleet.ParseBOM(r.BOM); err != nil {
			return nil, rowErr(CodeBOM, &fleet.FieldError{Field: "manufacturing.bom", Message: fmt.Sprintf("invalid CycloneDX document: %v", err)})
		}
		d.Manufacturing.BOM = r.BOM
	case ok:
		d.Manufacturing.BOM = doc
	}
	return d, nil
}
