package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// deviceInput is the body of POST /v1/devices: a device without what the
// server owns (id, version, timestamps, lifecycle, end of life), so a
// client can neither choose an id nor register a device already active.
type deviceInput struct {
	Identity      fleet.Identity          `json:"identity"`
	Manufacturing fleet.Manufacturing     `json:"manufacturing"`
	Provisioning  fleet.Provisioning      `json:"provisioning"`
	Inventory     fleet.Inventory         `json:"inventory"`
	Maintenance   []fleet.MaintenanceItem `json:"maintenance,omitempty"`
	Compliance    []fleet.ComplianceItem  `json:"compliance,omitempty"`
	Attributes    map[string]string       `json:"attributes,omitempty"`
}

// devicePatch is the body of PATCH /v1/devices/{id}. A given section
// replaces that section whole; attributes merge, a null value deleting the
// key. In identity only hardwareRevision and batch may change.
type devicePatch struct {
	Identity      *fleet.Identity         `json:"identity,omitempty"`
	Manufacturing *fleet.Manufacturing    `json:"manufacturing,omitempty"`
	Provisioning  *fleet.Provisioning     `json:"provisioning,omitempty"`
	Inventory     *fleet.Inventory        `json:"inventory,omitempty"`
	Compliance    *[]fleet.ComplianceItem `json:"compliance,omitempty"`
	Attributes    map[string]*string      `json:"attributes,omitempty"`
}

// manufacturingChange is how a device.updated event records a new
// manufacturing section: the BOM by its digest, as device.created does, so
// each edit does not copy a large document into the history again.
type manufacturingChange struct {
	BOMSha256 string               `json:"bomSha256,omitempty"`
	QC        []fleet.QCResult     `json:"qc"`
	Assembly  []fleet.AssemblyStep `json:"assembly"`
}

func (s *Server) createDevice(r *http.Request, in *deviceInput) (*fleet.Device, error) {
	p := principal(r)
	d := &fleet.Device{
		Identity:      in.Identity,
		Manufacturing: in.Manufacturing,
		Provisioning:  in.Provisioning,
		Inventory:     in.Inventory,
		Maintenance:   in.Maintenance,
		Compliance:    in.Compliance,
		Attributes:    in.Attributes,
	}
	normalizeBOM(&d.Manufacturing)
	if p.scoped() {
		switch d.Identity.Factory {
		case "":
			d.Identity.Factory = p.Factory
		case p.Factory:
		default:
			return nil, errorf(http.StatusForbidden, codeForbidden, "identity.factory",
				"this token registers devices for factory %q only", p.Factory)
		}
		// Validation answers before the scope, as the contract orders it;
		// the store fills in the initial state it checks.
		v := *d
		v.Lifecycle.State = fleet.StateManufactured
		if err := fleet.Validate(&v); err != nil {
			return nil, err
		}
		if err := s.checkScope(r.Context(), p, d.Identity.Model, d.Identity.Serial); err != nil {
			return nil, err
		}
	}
	if err := s.store.CreateDevice(r.Context(), d, p.Actor()); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Server) getDevice(r *http.Request) (*fleet.Device, error) {
	return s.loadDevice(r)
}

func (s *Server) patchDevice(r *http.Request, in *devicePatch) (*fleet.Device, error) {
	if in.Identity == nil && in.Manufacturing == nil && in.Provisioning == nil && in.Inventory == nil &&
		in.Compliance == nil && len(in.Attributes) == 0 {
		return nil, validationError("", "the patch changes nothing: give at least one of identity, manufacturing, provisioning, inventory, compliance, attributes")
	}
	return s.changeDevice(r, fleet.EventUpdated, func(d *fleet.Device, _ time.Time, _ string) (any, error) {
		return in.apply(d)
	})
}

// apply changes d as the patch says and returns the event data: the new
// value of every section given.
func (pt *devicePatch) apply(d *fleet.Device) (map[string]any, error) {
	changed := map[string]any{}
	if id := pt.Identity; id != nil {
		for _, f := range []struct{ name, given, have string }{
			{"identity.serial", id.Serial, d.Identity.Serial},
			{"identity.model", id.Model, d.Identity.Model},
			{"identity.factory", id.Factory, d.Identity.Factory},
		} {
			if f.given != "" && f.given != f.have {
				return nil, validationError(f.name, "is immutable (it is part of the device's identity); register a new device instead")
			}
		}
		d.Identity.HardwareRevision, d.Identity.Batch = id.HardwareRevision, id.Batch
		changed["identity"] = d.Identity
	}
	if m := pt.Manufacturing; m != nil {
		normalizeBOM(m)
		d.Manufacturing = *m
		mc := manufacturingChange{QC: m.QC, Assembly: m.Assembly}
		if len(m.BOM) > 0 {
			sum := sha256.Sum256(m.BOM)
			mc.BOMSha256 = hex.EncodeToString(sum[:])
		}
		changed["manufacturing"] = mc
	}
	if pt.Provisioning != nil {
		d.Provisioning = *pt.Provisioning
		changed["provisioning"] = d.Provisioning
	}
	if pt.Inventory != nil {
		d.Inventory = *pt.Inventory
		changed["inventory"] = d.Inventory
	}
	if pt.Compliance != nil {
		d.Compliance = *pt.Compliance
		changed["compliance"] = d.Compliance
	}
	if len(pt.Attributes) > 0 {
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		for k, v := range pt.Attributes {
			if v == nil {
				delete(d.Attributes, k)
			} else {
				d.Attributes[k] = *v
			}
		}
		// The merge itself, nulls included, says exactly what changed.
		changed["attributes"] = pt.Attributes
	}
	return changed, nil
}

// normalizeBOM treats "bom": null as no BOM: encoding/json hands a literal
// null to json.RawMessage, which would then fail CycloneDX validation.
func normalizeBOM(m *fleet.Manufacturing) {
	if bytes.Equal(bytes.TrimSpace(m.BOM), []byte("null")) {
		m.BOM = nil
	}
}

func (s *Server) deviceComponents(r *http.Request) (list[fleet.Component], error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return list[fleet.Component]{}, err
	}
	cs, err := s.store.DeviceComponents(r.Context(), d.ID)
	if err != nil {
		return list[fleet.Component]{}, err
	}
	return listOf(cs), nil
}

// loadDevice reads the device named by the {id} path value, answering 404
// alike for a missing device and one outside the caller's factory.
func (s *Server) loadDevice(r *http.Request) (*fleet.Device, error) {
	id := r.PathValue("id")
	d, err := s.store.GetDevice(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !principal(r).canSee(d)) {
		return nil, notFound("device", id)
	}
	return d, err
}

// changeFunc changes a device inside its update transaction and returns the
// data of the history event that records the change.
type changeFunc func(d *fleet.Device, now time.Time, actor string) (data any, err error)

// changeDevice applies fn to the device named by {id} as one atomic update
// that appends an event of type typ, honouring If-Match. Every device
// mutation goes through here, so scoping, version checks and history are
// uniform.
func (s *Server) changeDevice(r *http.Request, typ string, fn changeFunc) (*fleet.Device, error) {
	p := principal(r)
	id := r.PathValue("id")
	version, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	if p.scoped() {
		// Check the scope before the store compares versions, so a 412
		// never tells a manufacturer that another factory's device exists.
		if _, err := s.loadDevice(r); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	d, err := s.store.UpdateDevice(r.Context(), id, version, p.Actor(), func(d *fleet.Device) (*store.Change, error) {
		if !p.canSee(d) {
			return nil, notFound("device", id)
		}
		data, err := fn(d, now, p.Actor())
		if err != nil {
			return nil, err
		}
		return &store.Change{Type: typ, Data: data}, nil
	})
	if err != nil {
		if _, ok := errors.AsType[*apiError](err); !ok && errors.Is(err, store.ErrNotFound) {
			return nil, notFound("device", id)
		}
		return nil, err
	}
	return d, nil
}

// ifMatch parses the optional If-Match header: the device version the client
// read, bare or as the entity tag the API sends ("7"). 0 means no check.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, validationError("If-Match", "must be the device version you read (a positive integer, as in the ETag), got %q", h)
	}
	return n, nil
}

// devicePage is one page of a device listing.
type devicePage struct {
	Items []*fleet.Device `json:"items"`
	// NextCursor is empty on the last page.
	NextCursor string `json:"nextCursor"`
}
