package client

import (
	"context"
	"net/http"
)

// CommandRequest is a command for one device (docs/gateway.md).
type CommandRequest struct {
	// Topic is below devices/{id}/commands/, for example "reboot" or
	// "config/network"; no wildcards.
	Topic string `json:"topic"`
	// Payload is published as is, at most 64 KiB.
	Payload string `json:"payload,omitempty"`
	// Retain keeps the command for a device that is offline now.
	Retain bool `json:"retain,omitempty"`
}

// CommandSent is the server's answer to a command: it was published at
// QoS 1 on Topic.
type CommandSent struct {
	DeviceID string `json:"deviceId"`
	Topic    string `json:"topic"`
	// Connected says whether the device had a live session on the node
	// that published the command.
	Connected bool `json:"connected"`
}

// SendCommand publishes a command to a device through the gateway.
func (c *Client) SendCommand(ctx context.Context, id string, cmd CommandRequest) (*CommandSent, error) {
	return c.command(ctx, devicePath(id, "commands"), cmd)
}

// RotateDevice tells a device to renew its operational certificate.
func (c *Client) RotateDevice(ctx context.Context, id, reason string) (*CommandSent, error) {
	return c.command(ctx, devicePath(id, "rotate"), map[string]string{"reason": reason})
}

func (c *Client) command(ctx context.Context, path string, body any) (*CommandSent, error) {
	return fetch[CommandSent](ctx, c, call{method: http.MethodPost, path: path, body: body})
}
