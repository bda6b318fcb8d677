package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Region statuses.
const (
	RegionEnabled  = "enabled"
	RegionDraining = "draining"
	RegionDisabled = "disabled"
)

// Region is one regional endpoint of a deployment (docs/regions.md).
type Region struct {
	Name         string       `json:"name"`
	ProvisionURL string       `json:"provisionUrl"`
	MQTTURL      string       `json:"mqttUrl"`
	ProbeURL     string       `json:"probeUrl"`
	Location     *Coordinates `json:"location,omitempty"`
	// Weight is the region's share under the weighted policy. CreateRegion
	// sends it as given: 0 takes no share, so set it (the CLI and an API
	// call that omits it use 1).
	Weight    int       `json:"weight"`
	Status    string    `json:"status,omitempty"`
	Version   int64     `json:"version,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Devices is how many devices have the region as their home (read
	// only).
	Devices int `json:"devices"`
	// CAID is the region's own operational CA, empty when its devices get
	// the shared one (read only).
	CAID string `json:"caId,omitempty"`
	// CA asks CreateRegion to create the region's own operational CA
	// (sent, never read back: see CAID).
	CA bool `json:"-"`
}

// Coordinates are a point on the earth in decimal degrees.
type Coordinates struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// RegionPatch changes some fields of a region; nil fields stay.
type RegionPatch struct {
	ProvisionURL  *string      `json:"provisionUrl,omitempty"`
	MQTTURL       *string      `json:"mqttUrl,omitempty"`
	ProbeURL      *string      `json:"probeUrl,omitempty"`
	Location      *Coordinates `json:"location,omitempty"`
	ClearLocation bool         `json:"clearLocation,omitempty"`
	Weight        *int         `json:"weight,omitempty"`
	Status        *string      `json:"status,omitempty"`
	// CA creates the region's own operational CA; a region that has one
	// already is refused (409).
	CA bool `json:"ca,omitempty"`
}

// RegionMove is one device a drain moved.
type RegionMove struct {
	DeviceID  string `json:"deviceId"`
	From      string `json:"from"`
	To        string `json:"to"`
	DecidedBy string `json:"decidedBy"`
}

// DrainResult is one drain call's work: call again until Remaining is 0.
type DrainResult struct {
	Region    string       `json:"region"`
	Moved     []RegionMove `json:"moved"`
	Remaining int          `json:"remaining"`
}

// CreateRegion adds a region: its name, URLs, location, weight and
// status (the read-only fields are not sent).
func (c *Client) CreateRegion(ctx context.Context, r Region) (*Region, error) {
	body := struct {
		Name         string       `json:"name"`
		ProvisionURL string       `json:"provisionUrl"`
		MQTTURL      string       `json:"mqttUrl"`
		ProbeURL     string       `json:"probeUrl"`
		Location     *Coordinates `json:"location,omitempty"`
		Weight       int          `json:"weight"`
		Status       string       `json:"status,omitempty"`
		CA           bool         `json:"ca,omitempty"`
	}{r.Name, r.ProvisionURL, r.MQTTURL, r.ProbeURL, r.Location, r.Weight, r.Status, r.CA}
	return fetch[Region](ctx, c, call{method: http.MethodPost, path: "/v1/regions", body: body})
}

// ListRegions returns every region with its device count.
func (c *Client) ListRegions(ctx context.Context) ([]Region, error) {
	return list[Region](ctx, c, "/v1/regions")
}

// GetRegion returns one region with its device count.
func (c *Client) GetRegion(ctx context.Context, name string) (*Region, error) {
	return fetch[Region](ctx, c, call{method: http.MethodGet, path: "/v1/regions/" + url.PathEscape(name)})
}

// UpdateRegion changes the fields p sets.
func (c *Client) UpdateRegion(ctx context.Context, name string, p RegionPatch) (*Region, error) {
	return fetch[Region](ctx, c, call{method: http.MethodPatch, path: "/v1/regions/" + url.PathEscape(name), body: p})
}

// DeleteRegion deletes a region that is home to no device.
func (c *Client) DeleteRegion(ctx context.Context, name string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/regions/" + url.PathEscape(name)}, nil)
}

// DrainRegion marks a region draining and moves up to batch of its devices
// (0: the server's default) to other regions.
func (c *Client) DrainRegion(ctx context.Context, name string, batch int) (*DrainResult, error) {
	var out DrainResult
	body := map[string]int{}
	if batch > 0 {
		body["batch"] = batch
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/regions/" + url.PathEscape(name) + "/drain", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
