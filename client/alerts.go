package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Alert is a detection rule that fired on a device (docs/detection.md).
// Alerts with the same dedup key that are not resolved are one alert,
// whose Hits and LastSeen grow.
type Alert struct {
	ID         string          `json:"id"`
	DedupKey   string          `json:"dedupKey"`
	RuleID     string          `json:"ruleId"`
	DeviceID   string          `json:"deviceId"`
	Severity   string          `json:"severity"`
	State      string          `json:"state"`
	Summary    string          `json:"summary"`
	Evidence   json.RawMessage `json:"evidence"`
	Actions    []string        `json:"actions"`
	Hits       int64           `json:"hits"`
	Node       string          `json:"node,omitempty"`
	FirstSeen  time.Time       `json:"firstSeen"`
	LastSeen   time.Time       `json:"lastSeen"`
	AckedAt    *time.Time      `json:"acknowledgedAt,omitempty"`
	AckedBy    string          `json:"acknowledgedBy,omitempty"`
	ResolvedAt *time.Time      `json:"resolvedAt,omitempty"`
	ResolvedBy string          `json:"resolvedBy,omitempty"`
	Resolution string          `json:"resolution,omitempty"`
	// ActionsTaken is filled by GetAlert only.
	ActionsTaken []AlertAction `json:"actionsTaken,omitempty"`
}

// AlertAction is a mitigation applied because of an alert.
type AlertAction struct {
	ID         string     `json:"id"`
	AlertID    string     `json:"alertId"`
	DeviceID   string     `json:"deviceId"`
	Action     string     `json:"action"`
	Status     string     `json:"status"`
	Detail     string     `json:"detail,omitempty"`
	Auto       bool       `json:"auto"`
	Actor      string     `json:"actor"`
	At         time.Time  `json:"at"`
	RevertedAt *time.Time `json:"revertedAt,omitempty"`
	RevertedBy string     `json:"revertedBy,omitempty"`
}

// AlertEvent is one event of the alert stream: alert.opened,
// alert.acknowledged or alert.resolved.
type AlertEvent struct {
	Event string `json:"event"`
	Alert Alert  `json:"alert"`
}

// AlertFilter narrows ListAlerts; empty fields match everything.
type AlertFilter struct {
	State, Device, Rule, Severity string
}

// ListAlerts returns one page of alerts, newest first.
func (c *Client) ListAlerts(ctx context.Context, f AlertFilter, opts ListOptions) (*Page[Alert], error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "device": f.Device, "rule": f.Rule, "severity": f.Severity} {
		if v != "" {
			q.Set(k, v)
		}
	}
	opts.encode(q)
	return fetch[Page[Alert]](ctx, c, call{method: http.MethodGet, path: "/v1/alerts", query: q})
}

// Alerts iterates over every alert matching f, page by page.
func (c *Client) Alerts(ctx context.Context, f AlertFilter) iter.Seq2[*Alert, error] {
	return iteratePages(ctx, func(ctx context.Context, cursor string) (*Page[Alert], error) {
		return c.ListAlerts(ctx, f, ListOptions{Limit: 500, Cursor: cursor})
	})
}

// GetAlert reads an alert with the actions taken on it.
func (c *Client) GetAlert(ctx context.Context, id string) (*Alert, error) {
	return fetch[Alert](ctx, c, call{method: http.MethodGet, path: "/v1/alerts/" + url.PathEscape(id)})
}

// AcknowledgeAlert acknowledges an open alert.
func (c *Client) AcknowledgeAlert(ctx context.Context, id string) (*Alert, error) {
	return fetch[Alert](ctx, c, call{method: http.MethodPost, path: "/v1/alerts/" + url.PathEscape(id) + "/acknowledge", body: struct{}{}})
}

// ResolveAlert resolves an alert with an optional resolution note.
func (c *Client) ResolveAlert(ctx context.Context, id, resolution string) (*Alert, error) {
	return fetch[Alert](ctx, c, call{method: http.MethodPost, path: "/v1/alerts/" + url.PathEscape(id) + "/resolve",
		body: map[string]string{"resolution": resolution}})
}

// MitigateAlert applies a mitigation (quarantine, suspend, revoke, rotate
// or group:NAME) to the alert's device. A mitigation that failed is
// recorded and returned with Status "failed".
func (c *Client) MitigateAlert(ctx context.Context, id, action string) (*AlertAction, error) {
	return fetch[AlertAction](ctx, c, call{method: http.MethodPost, path: "/v1/alerts/" + url.PathEscape(id) + "/actions",
		body: map[string]string{"action": action}})
}

// RevertAlertAction undoes a mitigation (un-quarantine, un-suspend, leave
// the group); reason goes into the device's history.
func (c *Client) RevertAlertAction(ctx context.Context, actionID, reason string) (*AlertAction, error) {
	return fetch[AlertAction](ctx, c, call{method: http.MethodPost, path: "/v1/alert-actions/" + url.PathEscape(actionID) + "/revert",
		body: map[string]string{"reason": reason}})
}

// WatchAlerts follows the alert stream of the node the client talks to,
// calling fn for each event of at least minSeverity (empty: all), until
// ctx ends, fn returns an error, or the server ends the stream.
func (c *Client) WatchAlerts(ctx context.Context, minSeverity string, fn func(AlertEvent) error) error {
	q := url.Values{}
	if minSeverity != "" {
		q.Set("severity", minSeverity)
	}
	cl := call{method: http.MethodGet, path: "/v1/alerts/stream", query: q, accept: "text/event-stream"}
	resp, err := c.send(ctx, cl, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev AlertEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("alert stream: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}

// Rule is a detection rule (docs/detection.md describes each field).
type Rule struct {
	ID          string   `json:"id"`
	Description string   `json:"description,omitempty"`
	Kind        string   `json:"kind"`
	Metric      string   `json:"metric,omitempty"`
	Op          string   `json:"op,omitempty"`
	Value       float64  `json:"value,omitempty"`
	Percentile  float64  `json:"percentile,omitempty"`
	Factor      float64  `json:"factor,omitempty"`
	Min         float64  `json:"min,omitempty"`
	Duration    string   `json:"duration,omitempty"`
	Consecutive int      `json:"consecutive,omitempty"`
	Severity    string   `json:"severity"`
	Actions     []string `json:"actions,omitempty"`
	Auto        bool     `json:"auto,omitempty"`
	Disabled    bool     `json:"disabled,omitempty"`
}

// Rules lists the detection rules.
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	var out struct {
		Items []Rule `json:"items"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/detect/rules"}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// PutRule creates or replaces a rule; the answer has the defaults filled in.
func (c *Client) PutRule(ctx context.Context, r Rule) (*Rule, error) {
	return fetch[Rule](ctx, c, call{method: http.MethodPut, path: "/v1/detect/rules/" + url.PathEscape(r.ID), body: r})
}

// DeleteRule deletes a rule.
func (c *Client) DeleteRule(ctx context.Context, id string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/detect/rules/" + url.PathEscape(id)}, nil)
}

// Baseline is a learned mean and spread of one metric.
type Baseline struct {
	Metric  string  `json:"metric"`
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	StdDev  float64 `json:"stdDev"`
}

// Baselines is what a node learned about a device, and about its model.
type Baselines struct {
	DeviceID        string     `json:"deviceId"`
	Observed        bool       `json:"observed"`
	Learning        bool       `json:"learning"`
	LearningSamples int        `json:"learningSamples"`
	Baselines       []Baseline `json:"baselines"`
	Model           string     `json:"model"`
	ModelBaselines  []Baseline `json:"modelBaselines"`
}

// DeviceBaselines reads the baselines the node learned for a device.
func (c *Client) DeviceBaselines(ctx context.Context, id string) (*Baselines, error) {
	return fetch[Baselines](ctx, c, call{method: http.MethodGet, path: devicePath(id, "baselines")})
}
