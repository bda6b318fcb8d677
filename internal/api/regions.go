package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// Permissions of the regions routes.
const (
	PermRegionsRead   Permission = "regions:read"
	PermRegionsManage Permission = "regions:manage"
)

// RegionStore keeps regions. *store.Store implements it; a Store without
// it answers the region routes with 503.
type RegionStore interface {
	region.Store
	CreateRegion(ctx context.Context, g *store.Region, actor string) error
	Region(ctx context.Context, name string) (*store.Region, error)
	UpdateRegion(ctx context.Context, name, actor string, fn func(*store.Region) error) (*store.Region, error)
	DeleteRegion(ctx context.Context, name, actor string) error
	CountDevices(ctx context.Context, f store.DeviceFilter) (int64, error)
}

var _ RegionStore = (*store.Store)(nil)

// RehomeCommand is the command topic (below devices/{id}/commands/) that
// tells a connected device its new home; the payload is a RehomePayload.
const RehomeCommand = "rehome"

// RehomePayload is the payload of the rehome command. MovedAt lets a
// device ignore the retained command once it has a newer home.
type RehomePayload struct {
	Region       string    `json:"region"`
	ProvisionURL string    `json:"provisionUrl"`
	MQTTURL      string    `json:"mqttUrl"`
	MovedAt      time.Time `json:"movedAt"`
	// Renew says the old and the new home use different operational CAs
	// (one of them has its own): the device should renew at its new
	// home's provision URL to get a certificate from the new home's CA.
	Renew bool `json:"renew,omitempty"`
}

// RegionInfo is a region with the number of devices whose home it is
// and the id of its own operational CA, if it has one.
type RegionInfo struct {
	store.Region
	Devices int `json:"devices"`
	// CAID is the region's active operational CA (purpose regional);
	// empty when the region's devices get the shared operational CA.
	CAID string `json:"caId,omitempty"`
}

// RegionCreate is the body of POST /v1/regions: the region, and whether
// it gets its own operational CA.
type RegionCreate struct {
	store.Region
	// Weight is the region's share under the weighted policy: 1 when
	// omitted, as the CLI's default; 0 takes none. It shadows
	// store.Region's to tell omitted from 0.
	Weight *int `json:"weight,omitempty"`
	// CA creates an operational CA for the region, signed by the root.
	CA bool `json:"ca,omitempty"`
}

// RegionPatch is the body of PATCH /v1/regions/{name}: the fields to
// change.
type RegionPatch struct {
	ProvisionURL *string            `json:"provisionUrl,omitempty"`
	MQTTURL      *string            `json:"mqttUrl,omitempty"`
	ProbeURL     *string            `json:"probeUrl,omitempty"`
	Location     *store.Coordinates `json:"location,omitempty"`
	// ClearLocation removes the location.
	ClearLocation bool    `json:"clearLocation,omitempty"`
	Weight        *int    `json:"weight,omitempty"`
	Status        *string `json:"status,omitempty"`
	// CA creates an operational CA for a region that has none.
	CA bool `json:"ca,omitempty"`
}

// DrainRequest is the body of POST /v1/regions/{name}/drain.
type DrainRequest struct {
	// Batch is how many devices to move in this call: default 100, at
	// most 1000.
	Batch int `json:"batch,omitempty"`
}

// DrainResult is the answer of a drain call: the devices it moved and how
// many still name the region. Call again until Remaining is 0.
type DrainResult struct {
	Region    string        `json:"region"`
	Moved     []region.Move `json:"moved"`
	Remaining int           `json:"remaining"`
}

// Error codes of the region routes.
const (
	// codeRegionInUse: a region that is home to devices cannot be deleted.
	codeRegionInUse = "region_in_use"
	// codeNoRegion: no enabled region can take a drained region's devices.
	codeNoRegion = "no_region"
)

// Drain batch bounds.
const (
	defaultDrainBatch = 100
	maxDrainBatch     = 1000
)

// regionRoutes are the routes of this feature (see features.go).
func regionRoutes() []route {
	return []route{
		{name: "createRegion", method: "POST", pattern: "/v1/regions", perm: PermRegionsManage, status: http.StatusCreated,
			summary: "Add a region with its endpoints", endpoint: withBody((*Server).createRegion)},
		{name: "listRegions", method: "GET", pattern: "/v1/regions", perm: PermRegionsRead, status: http.StatusOK,
			summary: "List regions with their device counts", endpoint: noBody((*Server).listRegions)},
		{name: "getRegion", method: "GET", pattern: "/v1/regions/{name}", perm: PermRegionsRead, status: http.StatusOK,
			summary: "Read a region with its device count", endpoint: noBody((*Server).getRegion)},
		{name: "updateRegion", method: "PATCH", pattern: "/v1/regions/{name}", perm: PermRegionsManage, status: http.StatusOK,
			summary: "Change a region's endpoints, location, weight or status", endpoint: withBody((*Server).updateRegion)},
		{name: "deleteRegion", method: "DELETE", pattern: "/v1/regions/{name}", perm: PermRegionsManage, status: http.StatusNoContent,
			summary: "Delete a region that is home to no device", endpoint: noContent((*Server).deleteRegion)},
		{name: "drainRegion", method: "POST", pattern: "/v1/regions/{name}/drain", perm: PermRegionsManage, status: http.StatusOK,
			summary: "Mark a region draining and move a batch of its devices to other regions", endpoint: withBody((*Server).drainRegion)},
	}
}

// regionPermissions grants this feature's permissions to role r.
func regionPermissions(r Role) []Permission {
	switch r {
	case RoleAdmin, RoleOperator:
		return []Permission{PermRegionsRead, PermRegionsManage}
	case RoleAuditor:
		return []Permission{PermRegionsRead}
	}
	return nil
}

func (s *Server) regionStore() (RegionStore, error) {
	rs, ok := s.store.(RegionStore)
	if !ok {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this server keeps no regions"}
	}
	return rs, nil
}

func (s *Server) createRegion(r *http.Request, in *RegionCreate) (*RegionInfo, error) {
	rs, err := s.regionStore()
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	g := store.Region{Name: in.Name, ProvisionURL: in.ProvisionURL, MQTTURL: in.MQTTURL, ProbeURL: in.ProbeURL,
		Location: in.Location, Weight: 1, Status: in.Status}
	if in.Weight != nil {
		g.Weight = *in.Weight
	}
	if err := region.Validate(&g); err != nil {
		return nil, err
	}
	actor := principal(r).Actor()
	if in.CA {
		cas, err := s.regionCARegistry()
		if err != nil {
			return nil, err
		}
		creator, ok := cas.(regionCreator)
		if !ok {
			return nil, errorf(http.StatusServiceUnavailable, codeUnavailable, "ca", "this server's CA registry cannot create a region with its CA")
		}
		// Checked first for a clear answer; the store refuses both again
		// in the one transaction that writes the region and its CA.
		if _, err := rs.Region(ctx, g.Name); err == nil {
			return nil, regionExists(g.Name)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err := noRegionalCA(ctx, cas, g.Name); err != nil {
			return nil, err
		}
		a, err := creator.CreateRegion(ctx, &g, actor)
		if errors.Is(err, store.ErrDuplicate) {
			return nil, regionExists(g.Name)
		}
		if err != nil {
			return nil, err
		}
		return &RegionInfo{Region: g, CAID: a.ID}, nil
	}
	err = rs.CreateRegion(ctx, &g, actor)
	if errors.Is(err, store.ErrDuplicate) {
		return nil, regionExists(g.Name)
	}
	if err != nil {
		return nil, err
	}
	return &RegionInfo{Region: g, CAID: s.regionCAs(ctx)[g.Name]}, nil
}

// regionCreator creates a region with its own CA in one transaction;
// *ca.Registry has it.
type regionCreator interface {
	CreateRegion(ctx context.Context, g *store.Region, actor string) (*ca.Authority, error)
}

var _ regionCreator = (*ca.Registry)(nil)

func regionExists(name string) error {
	return errorf(http.StatusConflict, codeDuplicate, "name", "region %q exists already; change it with PATCH /v1/regions/%s", name, name)
}

// regionCARegistry is the CA registry, for regions that get their own CA.
func (s *Server) regionCARegistry() (CARegistry, error) {
	if s.cas == nil {
		return nil, errorf(http.StatusServiceUnavailable, codeUnavailable, "ca", "this server runs without a CA registry; regions cannot get their own CA here")
	}
	return s.cas, nil
}

// noRegionalCA refuses a region that has an active CA of its own already.
func noRegionalCA(ctx context.Context, cas CARegistry, name string) error {
	a, err := cas.RegionalCA(ctx, name)
	switch {
	case err == nil:
		return errorf(http.StatusConflict, codeDuplicate, "ca", "region %q has its own operational CA already (%s); its devices are issued by it", name, a.ID)
	case errors.Is(err, ca.ErrNoCA):
		return nil
	}
	return err
}

// addRegionalCA creates the region's CA, mapping the registry's errors.
func (s *Server) addRegionalCA(ctx context.Context, cas CARegistry, name, actor string) (*ca.Authority, error) {
	a, err := cas.AddRegionalCA(ctx, name, actor)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil, errorf(http.StatusConflict, codeDuplicate, "ca", "region %q has its own operational CA already; its devices are issued by it", name)
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("region", name)
	}
	return a, err
}

// regionCAs maps regions to the ids of their active CAs; empty without a
// CA registry. A failure to read them is logged, not fatal to listings.
func (s *Server) regionCAs(ctx context.Context) map[string]string {
	out := map[string]string{}
	if s.cas == nil {
		return out
	}
	rows, err := s.cas.List(ctx, store.CAFilter{Purpose: string(ca.PurposeRegional), Status: store.CAActive})
	if err != nil {
		s.log.WarnContext(ctx, "regional CAs not listed", "err", err)
		return out
	}
	for _, c := range rows {
		out[c.Factory] = c.ID
	}
	return out
}

// deviceCount counts the devices whose home is name.
func deviceCount(ctx context.Context, rs RegionStore, name string) (int, error) {
	n, err := rs.CountDevices(ctx, store.DeviceFilter{Attributes: map[string]string{region.AttrHome: name}})
	return int(n), err
}

func (s *Server) listRegions(r *http.Request) (list[RegionInfo], error) {
	rs, err := s.regionStore()
	if err != nil {
		return list[RegionInfo]{}, err
	}
	gs, err := rs.ListRegions(r.Context())
	if err != nil {
		return list[RegionInfo]{}, err
	}
	out := make([]RegionInfo, 0, len(gs))
	regionCAs := s.regionCAs(r.Context())
	for _, g := range gs {
		n, err := deviceCount(r.Context(), rs, g.Name)
		if err != nil {
			return list[RegionInfo]{}, err
		}
		out = append(out, RegionInfo{Region: g, Devices: n, CAID: regionCAs[g.Name]})
	}
	return listOf(out), nil
}

func (s *Server) getRegion(r *http.Request) (*RegionInfo, error) {
	rs, err := s.regionStore()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	g, err := rs.Region(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("region", name)
	}
	if err != nil {
		return nil, err
	}
	n, err := deviceCount(r.Context(), rs, name)
	return &RegionInfo{Region: *g, Devices: n, CAID: s.regionCAs(r.Context())[name]}, err
}

func (s *Server) updateRegion(r *http.Request, in *RegionPatch) (*RegionInfo, error) {
	rs, err := s.regionStore()
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	name := r.PathValue("name")
	if in.ClearLocation && in.Location != nil {
		return nil, validationError("location", "give a location or clearLocation, not both")
	}
	caID := ""
	if in.CA {
		// Everything is checked before the CA is made, so a bad request
		// changes nothing.
		cas, err := s.regionCARegistry()
		if err != nil {
			return nil, err
		}
		cur, err := rs.Region(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("region", name)
		}
		if err != nil {
			return nil, err
		}
		if err := in.apply(cur); err != nil {
			return nil, err
		}
		if err := noRegionalCA(ctx, cas, name); err != nil {
			return nil, err
		}
		a, err := s.addRegionalCA(ctx, cas, name, principal(r).Actor())
		if err != nil {
			return nil, err
		}
		caID = a.ID
	}
	g, err := rs.UpdateRegion(ctx, name, principal(r).Actor(), in.apply)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("region", name)
	}
	if err != nil {
		return nil, err
	}
	if caID == "" {
		caID = s.regionCAs(ctx)[name]
	}
	n, err := deviceCount(ctx, rs, name)
	return &RegionInfo{Region: *g, Devices: n, CAID: caID}, err
}

// apply changes g by the patch and validates the result.
func (in *RegionPatch) apply(g *store.Region) error {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&g.ProvisionURL, in.ProvisionURL)
	set(&g.MQTTURL, in.MQTTURL)
	set(&g.ProbeURL, in.ProbeURL)
	set(&g.Status, in.Status)
	if in.Location != nil {
		g.Location = in.Location
	}
	if in.ClearLocation {
		g.Location = nil
	}
	if in.Weight != nil {
		g.Weight = *in.Weight
	}
	if in.Status != nil && *in.Status == "" {
		return validationError("status", "must be enabled, draining or disabled")
	}
	return region.Validate(g)
}

// deleteRegion deletes a region that is home to no device; the store
// checks that and retires the region's CA in the same transaction.
func (s *Server) deleteRegion(r *http.Request) error {
	rs, err := s.regionStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	err = rs.DeleteRegion(r.Context(), name, principal(r).Actor())
	var inUse *store.RegionInUseError
	switch {
	case errors.As(err, &inUse):
		return errorf(http.StatusConflict, codeRegionInUse, "name", "region %q is home to %d %s; drain it first (POST /v1/regions/%s/drain, or muster regions drain %s) until none remain",
			name, inUse.Devices, plural(inUse.Devices, "device", "devices"), name, name)
	case errors.Is(err, store.ErrNotFound):
		return notFound("region", name)
	case err != nil:
		return err
	}
	// The region's CA, if it had one, was retired: see it here at once.
	if c, ok := s.cas.(interface{ Changed() }); ok {
		c.Changed()
	}
	return nil
}

// plural is one or many, by n.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// drainRegion marks the region draining (when it is enabled) and moves
// one batch of its devices; each moved device is sent a retained rehome
// command when the server has a gateway.
func (s *Server) drainRegion(r *http.Request, in *DrainRequest) (*DrainResult, error) {
	rs, err := s.regionStore()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	batch := in.Batch
	switch {
	case batch == 0:
		batch = defaultDrainBatch
	case batch < 0 || batch > maxDrainBatch:
		return nil, validationError("batch", "must be between 1 and %d", maxDrainBatch)
	}
	ctx := r.Context()
	g, err := rs.Region(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("region", name)
	}
	if err != nil {
		return nil, err
	}
	// Refuse before changing anything when the devices have nowhere to go.
	all, err := rs.ListRegions(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(all, func(o store.Region) bool { return o.Name != name && o.Status == store.RegionEnabled }) {
		return nil, errorf(http.StatusConflict, codeNoRegion, "name", "no other region is enabled to take the devices of %s; enable one first", name)
	}
	if g.Status == store.RegionEnabled {
		if g, err = rs.UpdateRegion(ctx, name, principal(r).Actor(), func(g *store.Region) error {
			g.Status = store.RegionDraining
			return nil
		}); err != nil {
			return nil, err
		}
	}
	svc, err := region.New(region.Config{Store: rs, Logger: s.log})
	if err != nil {
		return nil, err
	}
	moves, remaining, err := svc.DrainBatch(ctx, name, batch, principal(r).Actor())
	if errors.Is(err, region.ErrNoRegion) {
		return nil, errorf(http.StatusConflict, codeNoRegion, "name", "no other region is enabled to take the devices of %s; enable one first", name)
	}
	if err != nil {
		return nil, err
	}
	s.tellRehomed(ctx, rs, moves)
	return &DrainResult{Region: g.Name, Moved: moves, Remaining: remaining}, nil
}

// tellRehomed sends each moved device its new home over the gateway, as a
// retained command, so a device offline now learns it when it connects.
func (s *Server) tellRehomed(ctx context.Context, rs RegionStore, moves []region.Move) {
	if s.commander == nil || len(moves) == 0 {
		return
	}
	regions, err := rs.ListRegions(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "rehome commands not sent", "err", err)
		return
	}
	by := map[string]store.Region{}
	for _, g := range regions {
		by[g.Name] = g
	}
	regionCAs := s.regionCAs(ctx) // a region without an entry uses the shared operational CA
	for _, m := range moves {
		g := by[m.To]
		payload, _ := json.Marshal(RehomePayload{Region: g.Name, ProvisionURL: g.ProvisionURL, MQTTURL: g.MQTTURL, MovedAt: s.now().UTC(),
			Renew: regionCAs[m.From] != regionCAs[m.To]}) // plain data always encodes
		if _, err := s.commander.Send(ctx, gateway.Command{DeviceID: m.DeviceID, Topic: RehomeCommand, Payload: payload, Retain: true}); err != nil {
			s.log.WarnContext(ctx, "rehome command not sent; the device learns its home from its next report", "device", m.DeviceID, "err", err)
		}
	}
}
