package fleet

import (
	"fmt"
	"regexp"
	"strings"
)

// FieldError is a validation failure that names the offending field with a
// JSON-path-like name (for example "identity.serial"), so an API can answer
// {code, message, field}.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Limits on free-text fields, so one device cannot bloat the registry.
const (
	MaxNameLen  = 128
	MaxTextLen  = 4096
	MaxListLen  = 1000
	MaxAttrs    = 200
	maxTagOrKey = 128
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/+\-]*$`)

// ValidName checks an identifier-like value (serial, model, factory, group,
// tag, attribute key): printable, no spaces, bounded.
func ValidName(field, v string) error {
	if v == "" {
		return fieldErr(field, "is required")
	}
	if len(v) > MaxNameLen {
		return fieldErr(field, "is longer than %d characters", MaxNameLen)
	}
	if !namePattern.MatchString(v) {
		return fieldErr(field, "%q may contain only letters, digits and . _ : / + - and must start with a letter or digit", v)
	}
	return nil
}

// Validate checks a device record as a whole. It does not check lifecycle
// transitions (Transition does) nor uniqueness (the store does).
func Validate(d *Device) error {
	if err := ValidName("identity.serial", d.Identity.Serial); err != nil {
		return err
	}
	if err := ValidName("identity.model", d.Identity.Model); err != nil {
		return err
	}
	if err := ValidName("identity.factory", d.Identity.Factory); err != nil {
		return err
	}
	for field, v := range map[string]string{
		"identity.hardwareRevision": d.Identity.HardwareRevision,
		"identity.batch":            d.Identity.Batch,
	} {
		if v != "" {
			if err := ValidName(field, v); err != nil {
				return err
			}
		}
	}
	if !d.Lifecycle.State.Valid() {
		return fieldErr("lifecycle.state", "unknown state %q", d.Lifecycle.State)
	}
	if len(d.Manufacturing.BOM) > 0 {
		if _, err := ParseBOM(d.Manufacturing.BOM); err != nil {
			return &FieldError{Field: "manufacturing.bom", Message: err.Error()}
		}
	}
	if err := validateLists(d); err != nil {
		return err
	}
	if ks := d.Provisioning.Security.KeyStorage; ks != "" && ks != KeyStorageSecureElement && ks != KeyStorageTPM && ks != KeyStorageSoftware {
		return fieldErr("provisioning.security.keyStorage", "%q is not one of secure-element, tpm, software", ks)
	}
	loc := d.Inventory.Location
	if loc.Lat != nil && (*loc.Lat < -90 || *loc.Lat > 90) {
		return fieldErr("inventory.location.lat", "must be between -90 and 90")
	}
	if loc.Lon != nil && (*loc.Lon < -180 || *loc.Lon > 180) {
		return fieldErr("inventory.location.lon", "must be between -180 and 180")
	}
	if (loc.Lat == nil) != (loc.Lon == nil) {
		return fieldErr("inventory.location", "lat and lon must be given together")
	}
	for _, g := range d.Inventory.Groups {
		if err := ValidName("inventory.groups", g); err != nil {
			return err
		}
	}
	for _, t := range d.Inventory.Tags {
		if err := ValidName("inventory.tags", t); err != nil {
			return err
		}
	}
	if len(d.Attributes) > MaxAttrs {
		return fieldErr("attributes", "has more than %d entries", MaxAttrs)
	}
	for k, v := range d.Attributes {
		if err := ValidName("attributes", k); err != nil {
			return err
		}
		if len(v) > MaxTextLen {
			return fieldErr("attributes."+k, "is longer than %d characters", MaxTextLen)
		}
	}
	for i, c := range d.Compliance {
		if strings.TrimSpace(c.Standard) == "" {
			return fieldErr(fmt.Sprintf("compliance[%d].standard", i), "is required")
		}
		switch c.Status {
		case "compliant", "non-compliant", "not-assessed", "exempt":
		default:
			return fieldErr(fmt.Sprintf("compliance[%d].status", i), "%q is not one of compliant, non-compliant, not-assessed, exempt", c.Status)
		}
	}
	for i, q := range d.Manufacturing.QC {
		if err := ValidateQC(q); err != nil {
			return prefixed(fmt.Sprintf("manufacturing.qc[%d]", i), err)
		}
	}
	for i, m := range d.Maintenance {
		if err := ValidateMaintenance(m); err != nil {
			return prefixed(fmt.Sprintf("maintenance[%d]", i), err)
		}
	}
	return nil
}

func validateLists(d *Device) error {
	for field, n := range map[string]int{
		"manufacturing.qc":       len(d.Manufacturing.QC),
		"manufacturing.assembly": len(d.Manufacturing.Assembly),
		"provisioning.firmware":  len(d.Provisioning.Firmware),
		"provisioning.tests":     len(d.Provisioning.Tests),
		"inventory.groups":       len(d.Inventory.Groups),
		"inventory.tags":         len(d.Inventory.Tags),
		"maintenance":            len(d.Maintenance),
		"compliance":             len(d.Compliance),
	} {
		if n > MaxListLen {
			return fieldErr(field, "has more than %d entries", MaxListLen)
		}
	}
	return nil
}

func prefixed(prefix string, err error) error {
	if fe, ok := err.(*FieldError); ok {
		return &FieldError{Field: prefix + "." + fe.Field, Message: fe.Message}
	}
	return err
}

// ValidateQC checks one quality-control result.
func ValidateQC(q QCResult) error {
	if strings.TrimSpace(q.Test) == "" {
		return fieldErr("test", "is required")
	}
	if strings.TrimSpace(q.Result) == "" {
		return fieldErr("result", "is required")
	}
	return nil
}

// ValidateTest checks one provisioning test or validation result.
func ValidateTest(t TestResult) error {
	if strings.TrimSpace(t.Test) == "" {
		return fieldErr("test", "is required")
	}
	if strings.TrimSpace(t.Result) == "" {
		return fieldErr("result", "is required")
	}
	return nil
}

// ValidateMaintenance checks one maintenance record.
func ValidateMaintenance(m MaintenanceItem) error {
	if strings.TrimSpace(m.Problem) == "" {
		return fieldErr("problem", "is required")
	}
	for field, v := range map[string]string{"problem": m.Problem, "diagnosis": m.Diagnosis, "action": m.Action, "outcome": m.Outcome} {
		if len(v) > MaxTextLen {
			return fieldErr(field, "is longer than %d characters", MaxTextLen)
		}
	}
	return nil
}

// ValidateWipe checks a data-wipe attestation.
func ValidateWipe(w WipeAttestation) error {
	if strings.TrimSpace(w.Method) == "" {
		return fieldErr("method", "is required (for example nist-800-88-purge or crypto-erase)")
	}
	if strings.TrimSpace(w.By) == "" {
		return fieldErr("by", "is required: who performed the wipe")
	}
	return nil
}

// ValidateDisposal checks a disposal or recycling record.
func ValidateDisposal(p Disposal) error {
	switch p.Method {
	case "recycle", "destroy", "return", "refurbish":
		return nil
	}
	return fieldErr("method", "%q is not one of recycle, destroy, return, refurbish", p.Method)
}
