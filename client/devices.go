package client

import (
	"context"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// DeviceInput registers a new device: the device record without what the
// server assigns (id, version, timestamps, lifecycle, end of life).
// Identity.Serial, Identity.Model and Identity.Factory are required, except
// that a manufacturer token's factory is its own. Sections left at their zero
// value are not sent.
type DeviceInput struct {
	Identity      Identity          `json:"identity"`
	Manufacturing Manufacturing     `json:"manufacturing,omitzero"`
	Provisioning  Provisioning      `json:"provisioning,omitzero"`
	Inventory     Inventory         `json:"inventory,omitzero"`
	Maintenance   []MaintenanceItem `json:"maintenance,omitempty"`
	Compliance    []ComplianceItem  `json:"compliance,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
}

// DevicePatch changes parts of a device. A non-nil section replaces that
// section whole; Identity may change only HardwareRevision and Batch (serial,
// model and factory are immutable, so send them unchanged). Compliance is
// replaced when non-nil: an empty, non-nil slice clears it. Attributes merge
// into the device's: a nil value deletes the key.
type DevicePatch struct {
	Identity      *Identity          `json:"identity,omitempty"`
	Manufacturing *Manufacturing     `json:"manufacturing,omitempty"`
	Provisioning  *Provisioning      `json:"provisioning,omitempty"`
	Inventory     *Inventory         `json:"inventory,omitempty"`
	Compliance    []ComplianceItem   `json:"compliance,omitzero"`
	Attributes    map[string]*string `json:"attributes,omitempty"`
}

// DeviceFilter selects devices in ListDevices and Devices. Empty fields
// match anything; set fields must all match.
type DeviceFilter struct {
	State   State
	Model   string
	Batch   string
	Owner   string
	Factory string
	Group   string
	Tag     string
	// SerialPrefix matches serial numbers that start with it.
	SerialPrefix string
	// Component matches devices whose bill of materials lists a component
	// with this name.
	Component string
	// Attributes matches devices whose attribute key equals value, for
	// every pair.
	Attributes map[string]string
}

func (f DeviceFilter) encode(q url.Values) {
	for name, v := range map[string]string{
		"state": string(f.State), "model": f.Model, "batch": f.Batch, "owner": f.Owner,
		"factory": f.Factory, "group": f.Group, "tag": f.Tag, "serial": f.SerialPrefix,
		"component": f.Component,
	} {
		if v != "" {
			q.Set(name, v)
		}
	}
	// Sorted, so the same filter always makes the same URL (and the same
	// cache key in any proxy on the way).
	for _, k := range slices.Sorted(maps.Keys(f.Attributes)) {
		q.Add("attr", k+"="+f.Attributes[k])
	}
}

// StateChangeRequest asks for a lifecycle state change.
type StateChangeRequest struct {
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// DecommissionRequest takes a device out of service. Both the reason and the
// wipe attestation (method and who) are required.
type DecommissionRequest struct {
	Reason string          `json:"reason"`
	Wipe   WipeAttestation `json:"wipe"`
}

// devicePath returns the escaped path of a device or of one of its routes.
func devicePath(id string, sub ...string) string {
	p := "/v1/devices/" + url.PathEscape(id)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// deviceCall sends a request about one device and decodes the updated
// device the server answers with.
func (c *Client) deviceCall(ctx context.Context, cl call) (*Device, error) {
	var d Device
	if err := c.do(ctx, cl, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// CreateDevice registers a device. It starts in state manufactured.
func (c *Client) CreateDevice(ctx context.Context, in DeviceInput) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: "/v1/devices", body: in})
}

// GetDevice returns the device with the given id.
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodGet, path: devicePath(id)})
}

// ListDevices returns one page of the devices that match filter, in creation
// order.
func (c *Client) ListDevices(ctx context.Context, filter DeviceFilter, opts ListOptions) (*Page[Device], error) {
	q := url.Values{}
	filter.encode(q)
	opts.encode(q)
	return fetch[Page[Device]](ctx, c, call{method: http.MethodGet, path: "/v1/devices", query: q})
}

// CountDevices returns how many devices match filter, counted by the server
// without listing them. A manufacturer token counts its own factory's
// devices only.
func (c *Client) CountDevices(ctx context.Context, filter DeviceFilter) (int64, error) {
	q := url.Values{}
	filter.encode(q)
	var out struct {
		Count int64 `json:"count"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/devices/count", query: q}, &out); err != nil {
		return 0, err
	}
	return out.Count, nil
}

// devicesPageSize is the page size Devices asks for: large enough that a
// fleet of a million devices takes a thousand round trips, small enough that
// the first device arrives quickly.
const devicesPageSize = 500

// Devices iterates over every device that matches filter, fetching pages as
// the loop needs them. It stops at the first error, which it yields with a
// nil device:
//
//	for d, err := range c.Devices(ctx, client.DeviceFilter{State: client.StateActive}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(d.ID)
//	}
func (c *Client) Devices(ctx context.Context, filter DeviceFilter) iter.Seq2[*Device, error] {
	return iteratePages(ctx, func(ctx context.Context, cursor string) (*Page[Device], error) {
		return c.ListDevices(ctx, filter, ListOptions{Limit: devicesPageSize, Cursor: cursor})
	})
}

// UpdateDevice applies patch to a device. When ifVersion is not zero the
// server applies it only if the device is still at that version, and
// answers CodeVersionMismatch otherwise; read-modify-write callers should
// always pass the version they read.
func (c *Client) UpdateDevice(ctx context.Context, id string, patch DevicePatch, ifVersion int64) (*Device, error) {
	cl := call{method: http.MethodPatch, path: devicePath(id), body: patch}
	if ifVersion != 0 {
		cl.header = http.Header{"If-Match": {strconv.FormatInt(ifVersion, 10)}}
	}
	return c.deviceCall(ctx, cl)
}

// SetState moves a device to another lifecycle state. A change the
// lifecycle does not allow fails with CodeInvalidTransition and the allowed
// states in APIError.Allowed.
func (c *Client) SetState(ctx context.Context, id string, state State, reason string) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "state"),
		body: StateChangeRequest{State: state, Reason: reason}})
}

// AddQC records a quality-control result.
func (c *Client) AddQC(ctx context.Context, id string, qc QCResult) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "qc"), body: qc})
}

// AddTest records a provisioning test or validation result.
func (c *Client) AddTest(ctx context.Context, id string, t TestResult) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "tests"), body: t})
}

// AddMaintenance records a maintenance or troubleshooting item.
func (c *Client) AddMaintenance(ctx context.Context, id string, m MaintenanceItem) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "maintenance"), body: m})
}

// Decommission takes a device out of service, recording why and how its
// data was wiped.
func (c *Client) Decommission(ctx context.Context, id string, req DecommissionRequest) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "decommission"), body: req})
}

// Dispose records the physical fate of a decommissioned device. The device
// ends disposed, or refurbished when the method is "refurbish".
func (c *Client) Dispose(ctx context.Context, id string, d Disposal) (*Device, error) {
	return c.deviceCall(ctx, call{method: http.MethodPost, path: devicePath(id, "disposal"), body: d})
}

// items is the envelope of the API's unpaginated lists.
type items[T any] struct {
	Items []T `json:"items"`
}

// list fetches an unpaginated list route.
func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var out items[T]
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Components returns the components of a device's bill of materials.
func (c *Client) Components(ctx context.Context, id string) ([]Component, error) {
	return list[Component](ctx, c, devicePath(id, "components"))
}

// History returns a device's history, oldest event first.
func (c *Client) History(ctx context.Context, id string) ([]Event, error) {
	return list[Event](ctx, c, devicePath(id, "history"))
}

// VerifyHistory asks the server to recompute a device's hash chain.
func (c *Client) VerifyHistory(ctx context.Context, id string) (*Verification, error) {
	return fetch[Verification](ctx, c, call{method: http.MethodGet, path: devicePath(id, "history", "verify")})
}

// Passport returns a device's passport: its whole record and verified
// history in one document.
func (c *Client) Passport(ctx context.Context, id string) (*Passport, error) {
	var p Passport
	cl := call{method: http.MethodGet, path: devicePath(id, "passport"), query: url.Values{"format": {"json"}}}
	if err := c.do(ctx, cl, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PassportMarkdown returns a device's passport as a Markdown document, for
// people and printers.
func (c *Client) PassportMarkdown(ctx context.Context, id string) ([]byte, error) {
	var md []byte
	cl := call{method: http.MethodGet, path: devicePath(id, "passport"),
		query: url.Values{"format": {"md"}}, accept: "text/markdown"}
	if err := c.do(ctx, cl, &md); err != nil {
		return nil, err
	}
	return md, nil
}
