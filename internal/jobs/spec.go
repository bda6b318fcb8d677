// Package jobs runs bulk jobs: one operation (pre-registration, attribute
// and group updates, state changes, certificate revocations, re-provisioning
// requests) applied to every row of a CSV or JSON lines manifest of any
// length (decision 0012).
//
// The manifest is stored in the database in chunks as it is uploaded, so
// any node sharing the database can run or finish the job. A Runner on each
// node claims runnable jobs through a lease (package lease) and applies one
// chunk per transaction together with the chunk's per-row results, so a job
// interrupted at any moment (kill -9, a lost node) resumes where it stopped
// with every row applied exactly once. Operations are idempotent per row:
// applying a row whose change is already in place is "unchanged".
package jobs

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/revocation"
)

// Op is what a job does to each row's device.
type Op string

// The operations.
const (
	// OpRegister pre-registers devices (state manufactured) that will
	// provision with the job's template. A row whose device is registered
	// already with the same data is unchanged; with different data it is
	// an error (use OpUpdate to change it).
	OpRegister Op = "register"
	// OpUpdate sets the owner and site, merges attributes (an empty value
	// removes the attribute) and adds groups and tags.
	OpUpdate Op = "update"
	// OpState moves devices to a lifecycle state.
	OpState Op = "state"
	// OpRevoke revokes every certificate of each device.
	OpRevoke Op = "revoke"
	// OpReprovision requests re-provisioning: the device moves to state
	// reprovisioning (and, with a template, to that template), so its next
	// provisioning request with its birth certificate is accepted under
	// the template's re-provisioning policy, even from quarantine.
	OpReprovision Op = "reprovision"
)

// Ops lists every operation.
var Ops = []Op{OpRegister, OpUpdate, OpState, OpRevoke, OpReprovision}

// ParseOp returns the operation named s.
func ParseOp(s string) (Op, error) {
	op := Op(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Ops, op) {
		names := make([]string, len(Ops))
		for i, o := range Ops {
			names[i] = string(o)
		}
		return "", fmt.Errorf("unknown job operation %q: want one of %s", s, strings.Join(names, ", "))
	}
	return op, nil
}

// Spec is a job's template: the operation and the values every row gets
// unless it says otherwise.
type Spec struct {
	Op Op `json:"op"`
	// Template names the provisioning template registered devices provision
	// with (required for register; optional for reprovision, which then
	// switches devices to it). TemplateVersion is the version current when
	// the job was started, recorded for the record.
	Template        string `json:"template,omitempty"`
	TemplateVersion int64  `json:"templateVersion,omitempty"`
	// Defaults fill in what a row leaves empty; groups, tags and attributes
	// are merged with the row's.
	Defaults Defaults `json:"defaults,omitzero"`
	// State is the target of a state job when a row names none.
	State fleet.State `json:"state,omitempty"`
	// Reason is recorded with state changes and re-provisioning requests.
	Reason string `json:"reason,omitempty"`
	// RevocationReason is an RFC 5280 reason name for revoke jobs;
	// unspecified when empty.
	RevocationReason string `json:"revocationReason,omitempty"`
}

// Defaults are values every row gets unless it sets its own.
type Defaults struct {
	Factory    string            `json:"factory,omitempty"`
	Model      string            `json:"model,omitempty"`
	Owner      string            `json:"owner,omitempty"`
	Site       string            `json:"site,omitempty"`
	Batch      string            `json:"batch,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Validate checks the spec as a whole; errors are *fleet.FieldError.
func (s *Spec) Validate() error {
	if _, err := ParseOp(string(s.Op)); err != nil {
		return &fleet.FieldError{Field: "op", Message: err.Error()}
	}
	if s.Op == OpRegister && s.Template == "" {
		return &fleet.FieldError{Field: "template", Message: "is required for register jobs: name the provisioning template the devices will provision with"}
	}
	if s.Template != "" {
		if err := fleet.ValidName("template", s.Template); err != nil {
			return err
		}
	}
	d := s.Defaults
	for field, v := range map[string]string{"factory": d.Factory, "model": d.Model, "batch": d.Batch} {
		if v != "" {
			if err := fleet.ValidName(field, v); err != nil {
				return err
			}
		}
	}
	for i, g := range d.Groups {
		if err := fleet.ValidName(fmt.Sprintf("groups[%d]", i), g); err != nil {
			return err
		}
	}
	for i, g := range d.Tags {
		if err := fleet.ValidName(fmt.Sprintf("tags[%d]", i), g); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.Attributes)) {
		if err := fleet.ValidName("attributes", k); err != nil {
			return err
		}
	}
	if s.State != "" {
		if _, err := targetState(string(s.State)); err != nil {
			return &fleet.FieldError{Field: "state", Message: err.Error()}
		}
	}
	if len(s.Reason) > fleet.MaxTextLen {
		return &fleet.FieldError{Field: "reason", Message: fmt.Sprintf("is longer than %d characters", fleet.MaxTextLen)}
	}
	if s.RevocationReason != "" {
		if _, err := revocation.ParseReason(s.RevocationReason); err != nil {
			return &fleet.FieldError{Field: "revocationReason", Message: err.Error()}
		}
	}
	return nil
}

// targetState parses the state a state job may move devices to. States
// that carry evidence (decommissioning's wipe attestation, disposal) have
// their own routes and are not bulk operations.
func targetState(s string) (fleet.State, error) {
	st, err := fleet.ParseState(s)
	if err != nil {
		return "", err
	}
	switch st {
	case fleet.StateDecommissioned, fleet.StateDisposed, fleet.StateRefurbished:
		return "", fmt.Errorf("a job cannot move devices to %s: that records evidence per device (POST /v1/devices/{id}/decommission or /disposal)", st)
	}
	return st, nil
}
