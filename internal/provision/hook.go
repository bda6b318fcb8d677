package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HookRequest is what Muster POSTs to a template's pre-provisioning hook
// (documented in docs/provisioning.md).
type HookRequest struct {
	Kind   string     `json:"kind"` // provision, reprovision or renew
	Device HookDevice `json:"device"`
	// BirthCertificate is the PEM of the device's birth certificate;
	// empty for claims and renewals.
	BirthCertificate string            `json:"birthCertificate,omitempty"`
	Parameters       map[string]string `json:"parameters"`
	Template         HookTemplate      `json:"template"`
	Region           string            `json:"region,omitempty"`
}

// HookDevice names the device in a hook request.
type HookDevice struct {
	ID               string `json:"id"`
	Factory          string `json:"factory"`
	Model            string `json:"model"`
	Serial           string `json:"serial"`
	HardwareRevision string `json:"hardwareRevision,omitempty"`
	State            string `json:"state"`
}

// HookTemplate names the template in a hook request.
type HookTemplate struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
}

// HookResponse is the hook's answer. Allow false refuses; Reason is
// recorded. ParameterOverrides replace request parameters and are checked
// against the template like them.
type HookResponse struct {
	Allow              bool           `json:"allow"`
	ParameterOverrides map[string]any `json:"parameterOverrides,omitempty"`
	Reason             string         `json:"reason,omitempty"`
}

// HookCaller calls pre-provisioning hooks.
type HookCaller interface {
	CallHook(ctx context.Context, url string, timeout time.Duration, req *HookRequest) (*HookResponse, error)
}

// maxHookAnswer bounds a hook's answer.
const maxHookAnswer = 64 << 10

// HTTPHook calls hooks over HTTP(S) with Client (http.DefaultClient when
// nil).
type HTTPHook struct {
	Client *http.Client
}

// CallHook POSTs req as JSON and decodes the answer. Anything but a 200
// with a JSON answer is an error, and the pipeline denies on errors.
func (h HTTPHook) CallHook(ctx context.Context, url string, timeout time.Duration, req *HookRequest) (*HookResponse, error) {
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("hook: encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("hook: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "muster-provisioning-hook/1")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("hook %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("hook %s answered %s", url, resp.Status)
	}
	var ans HookResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxHookAnswer))
	if err := dec.Decode(&ans); err != nil {
		return nil, fmt.Errorf("hook %s: decode answer: %w", url, err)
	}
	return &ans, nil
}
