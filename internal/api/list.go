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
	f, err := deviceFilter(q)
	if err != nil {
		return devicePage{}, err
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return devicePage{}, err
	}
	if p := principal(r); p.scoped() {
		// Naming another factory is refused rather than silently answered
		// with the caller's own devices, which would look like the other
		// factory's.
		if p.Factory == "" || (f.Factory != "" && f.Factory != p.Factory) {
			return devicePage{}, errorf(http.StatusForbidden, codeForbidden, "factory",
				"this token lists devices of factory %q only", p.Factory)
		}
		f.Factory = p.Factory
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
