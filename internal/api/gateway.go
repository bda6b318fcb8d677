package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// MeteringStore reads what the device gateway records about devices:
// metering windows and presence. *store.Store implements it; a Store
// without it answers the gateway routes with 503.
type MeteringStore interface {
	DeviceMetrics(ctx context.Context, id string, from, to time.Time) ([]store.MeterWindow, error)
	DevicePresence(ctx context.Context, id string) (store.Presence, error)
}

// defaultMetricsSpan is how far back GET /v1/devices/{id}/metrics looks
// without ?from.
const defaultMetricsSpan = 24 * time.Hour

// maxMetricsSpan bounds one query: a year of 5-minute windows.
const maxMetricsSpan = 366 * 24 * time.Hour

// DeviceMetrics is the answer of GET /v1/devices/{id}/metrics: the
// device's presence and its metering windows in [from, to), oldest first.
type DeviceMetrics struct {
	DeviceID string `json:"deviceId"`
	// Presence is absent for a device that never connected.
	Presence *store.Presence     `json:"presence,omitempty"`
	From     time.Time           `json:"from"`
	To       time.Time           `json:"to"`
	Windows  []store.MeterWindow `json:"windows"`
}

// gatewayRoutes are the routes of the device gateway's data.
func gatewayRoutes() []route {
	ts := map[string]any{"type": "string", "format": "date-time"}
	return []route{
		{name: "getDeviceMetrics", method: "GET", pattern: "/v1/devices/{id}/metrics", perm: PermDevicesRead, status: http.StatusOK,
			summary: "A device's presence and gateway metering windows", endpoint: noBody((*Server).deviceMetrics),
			query: []queryParam{
				{name: "from", desc: "first window start to include (RFC 3339); default 24 hours before to", schema: ts},
				{name: "to", desc: "window starts before this (RFC 3339); default now", schema: ts},
			}},
	}
}

func (s *Server) deviceMetrics(r *http.Request) (*DeviceMetrics, error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return nil, err
	}
	ms, ok := s.store.(MeteringStore)
	if !ok {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "this server keeps no gateway metering"}
	}
	to, err := timeParam(r, "to", s.now())
	if err != nil {
		return nil, err
	}
	from, err := timeParam(r, "from", to.Add(-defaultMetricsSpan))
	if err != nil {
		return nil, err
	}
	switch {
	case !from.Before(to):
		return nil, validationError("from", "must be before to")
	case to.Sub(from) > maxMetricsSpan:
		return nil, validationError("from", "the span from..to is at most 366 days; ask for less")
	}
	out := &DeviceMetrics{DeviceID: d.ID, From: from.UTC(), To: to.UTC(), Windows: []store.MeterWindow{}}
	if ws, err := ms.DeviceMetrics(r.Context(), d.ID, from, to); err != nil {
		return nil, err
	} else if ws != nil {
		out.Windows = ws
	}
	switch p, err := ms.DevicePresence(r.Context(), d.ID); {
	case err == nil:
		out.Presence = &p
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return out, nil
}

// timeParam reads an RFC 3339 query parameter, def when absent.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, validationError(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, nil
}
