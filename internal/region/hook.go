package region

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// HookRequest is what Muster POSTs to an allocation hook.
type HookRequest struct {
	Device       HookDevice             `json:"device"`
	Template     string                 `json:"template,omitempty"`
	Home         string                 `json:"home,omitempty"`
	Measurements map[string]Measurement `json:"measurements,omitempty"`
	Location     *Location              `json:"location,omitempty"`
	// Regions are the enabled regions, by name.
	Regions []Region `json:"regions"`
}

// HookDevice names the device in a HookRequest.
type HookDevice struct {
	ID      string `json:"id"`
	Factory string `json:"factory,omitempty"`
	Model   string `json:"model,omitempty"`
	Serial  string `json:"serial,omitempty"`
}

// HookResponse is the hook's answer: the name of an enabled region.
type HookResponse struct {
	Region string `json:"region"`
}

// maxHookAnswer bounds a hook's answer.
const maxHookAnswer = 16 << 10

// callHook asks h for a region. Anything but a 200 with a JSON object
// naming a region within the timeout is an error, and the caller falls
// back.
func (a *Allocator) callHook(ctx context.Context, h *AllocationHook, cand []Region, in Input) (string, error) {
	if h == nil {
		return "", fmt.Errorf("no hook configured")
	}
	timeout, err := h.timeout()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(HookRequest{
		Device:   HookDevice{ID: in.DeviceID, Factory: in.Factory, Model: in.Model, Serial: in.Serial},
		Template: in.Template, Home: in.Home, Measurements: in.Measurements, Location: in.Location, Regions: cand,
	})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "muster-region-hook/1")
	client := a.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s", h.URL, resp.Status)
	}
	var ans HookResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxHookAnswer)).Decode(&ans); err != nil {
		return "", fmt.Errorf("%s: decode answer: %w", h.URL, err)
	}
	if ans.Region == "" {
		return "", fmt.Errorf("%s named no region", h.URL)
	}
	return ans.Region, nil
}
