package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DeviceMetrics is a device's presence on the gateway and its metering
// windows, as GET /v1/devices/{id}/metrics answers (docs/gateway.md).
type DeviceMetrics struct {
	DeviceID string `json:"deviceId"`
	// Presence is nil for a device that never connected.
	Presence *Presence     `json:"presence,omitempty"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Windows  []MeterWindow `json:"windows"`
}

// Presence is whether a device is connected to the gateway, and when it
// was last seen there.
type Presence struct {
	Connected   bool      `json:"connected"`
	Node        string    `json:"node,omitempty"`
	Remote      string    `json:"remote,omitempty"`
	ConnectedAt time.Time `json:"connectedAt"`
	LastSeen    time.Time `json:"lastSeen"`
}

// MeterWindow is what the gateway counted for a device in one fixed
// window, summed over the nodes that served it.
type MeterWindow struct {
	Start        time.Time        `json:"start"`
	Seconds      int64            `json:"seconds"`
	Attempts     int64            `json:"connectionAttempts"`
	Connects     int64            `json:"connects"`
	Takeovers    int64            `json:"takeovers"`
	AuthFailures int64            `json:"authorizationFailures"`
	MsgsIn       int64            `json:"messagesIn"`
	MsgsOut      int64            `json:"messagesOut"`
	BytesIn      int64            `json:"bytesIn"`
	BytesOut     int64            `json:"bytesOut"`
	Reports      int64            `json:"reports"`
	BadReports   int64            `json:"rejectedReports"`
	Disconnects  map[string]int64 `json:"disconnects,omitempty"`
	Topics       []string         `json:"topics,omitempty"`
	SourceIPs    []string         `json:"sourceIps,omitempty"`

	// RevokedAttempts counts attempts refused because the certificate was
	// revoked.
	RevokedAttempts int64 `json:"revokedAttempts,omitempty"`
}

// DeviceMetrics returns a device's presence and its metering windows that
// start in [from, to). Zero times mean the server's defaults: the 24 hours
// up to now.
func (c *Client) DeviceMetrics(ctx context.Context, id string, from, to time.Time) (*DeviceMetrics, error) {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339))
	}
	return fetch[DeviceMetrics](ctx, c, call{method: http.MethodGet, path: devicePath(id, "metrics"), query: q})
}
