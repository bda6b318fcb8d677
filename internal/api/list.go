package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Page sizes of GET /v1/devices (docs/api-contract.md).
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (s *Server) listDevices(r *http.Request) (devicePage, error) {
	q := r.URL.Query()
	f, err := scopedDeviceFilter(r, q)
	if err != nil {
		return devicePage{}, err
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return devicePage{}, err
	}
	devs, next, err := s.store.ListDevices(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		return devicePage{}, err
	}
	if devs == nil {
		devs = []*fleet.Device{}
	}
	return devicePage{Items: devs, NextCursor: next}, nil
}

// deviceTotal is the answer of GET /v1/devices/count.
type deviceTotal struct {
	Count int64 `json:"count"`
}

func (s *Server) countDevices(r *http.Request) (deviceTotal, error) {
	f, err := scopedDeviceFilter(r, r.URL.Query())
	if err != nil {
		return deviceTotal{}, err
	}
	n, err := s.store.CountDevices(r.Context(), f)
	if err != nil {
		return deviceTotal{}, err
	}
	return deviceTotal{Count: n}, nil
}

// scopedDeviceFilter is the query's device filter as the caller may apply
// it: a manufacturer token's filter is narrowed to its own factory, so
// listing and counting see the same devices.
func scopedDeviceFilter(r *http.Request, q url.Values) (store.DeviceFilter, error) {
	f, err := deviceFilter(q)
	if err != nil {
		return f, err
	}
	if p := principal(r); p.scoped() {
		// Naming another factory is refused rather than silently answered
		// with the caller's own devices, which would look like the other
		// factory's.
		if p.Factory == "" || (f.Factory != "" && f.Factory != p.Factory) {
			return f, errorf(http.StatusForbidden, codeForbidden, "factory",
				"this token reads devices of factory %q only", p.Factory)
		}
		f.Factory = p.Factory
	}
	return f, nil
}

// deviceFilterParams declares the query parameters deviceFilter reads, for
// every route that filters devices.
func deviceFilterParams() []queryParam {
	str := map[string]any{"type": "string"}
	return []queryParam{
		{name: "state", desc: "lifecycle state", schema: map[string]any{"type": "string", "enum": stateNames()}},
		{name: "model", desc: "exact model", schema: str},
		{name: "batch", desc: "exact manufacturing batch", schema: str},
		{name: "owner", desc: "exact owner", schema: str},
		{name: "factory", desc: "exact factory (a manufacturer token may name only its own)", schema: str},
		{name: "group", desc: "member of this inventory group", schema: str},
		{name: "tag", desc: "has this inventory tag", schema: str},
		{name: "serial", desc: "serial number prefix", schema: str},
		{name: "component", desc: "BOM lists a component with this name", schema: str},
		{name: "attr", desc: "key=value attribute match; repeat for AND", schema: str, repeat: true},
	}
}

// deviceFilter reads the listing filters from the query. checkQuery has
// already refused unknown and repeated parameters.
func deviceFilter(q url.Values) (store.DeviceFilter, error) {
	f := store.DeviceFilter{
		Model:        q.Get("model"),
		Batch:        q.Get("batch"),
		Owner:        q.Get("owner"),
		Factory:      q.Get("factory"),
		Group:        q.Get("group"),
		Tag:          q.Get("tag"),
		SerialPrefix: q.Get("serial"),
		Component:    q.Get("component"),
	}
	if v := q.Get("state"); v != "" {
		st, err := fleet.ParseState(v)
		if err != nil {
			return f, queryError("state", "%v", err)
		}
		f.State = st
	}
	for _, kv := range q["attr"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, queryError("attr", "attr %q must be key=value", kv)
		}
		if err := fleet.ValidName("attr", k); err != nil {
			return f, queryError("attr", "attr key %q is not a valid attribute key", k)
		}
		if f.Attributes == nil {
			f.Attributes = map[string]string{}
		}
		if old, dup := f.Attributes[k]; dup && old != v {
			return f, queryError("attr", "attr %q is given twice with different values; no device can match", k)
		}
		f.Attributes[k] = v
	}
	return f, nil
}

func pageLimit(v string) (int, error) {
	if v == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, queryError("limit", "limit must be an integer from 1 to %d, got %q", maxPageSize, v)
	}
	return n, nil
}
