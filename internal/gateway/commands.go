package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Commands reach devices on their own topics: devices/{id}/commands/...
// An operator names only the part after commands/, so a command can never
// land on another device's topics or on a broadcast.
const commandsLevel = "commands"

// RotateCommand is the command topic, under devices/{id}/commands/, that
// tells a device to renew its operational certificate.
const RotateCommand = "rotate"

// ErrBadCommand means a command's topic or payload is not acceptable.
var ErrBadCommand = errors.New("gateway: bad command")

// MaxCommandBytes bounds a command's payload.
const MaxCommandBytes = 64 << 10

// EventCommandSent records in a device's history that a command was
// published to it (data: topic, bytes, retain, connected; never the
// payload, which may carry secrets).
const EventCommandSent = "device.command_sent"

// Command is a message for one device.
type Command struct {
	// DeviceID is the device to reach.
	DeviceID string
	// Topic is the command's topic below devices/{id}/commands/, for
	// example "reboot" or "config/network".
	Topic   string
	Payload []byte
	// Retain keeps the command for a device that is offline now.
	Retain bool
}

// CommandTopic is the full topic of a command.
func CommandTopic(deviceID, topic string) string {
	return devicesRoot + "/" + deviceID + "/" + commandsLevel + "/" + topic
}

// ValidCommandTopic reports whether topic may name a command for the
// device: one or more levels, no wildcards, and within the device's own
// policy, so it reaches exactly that device.
func ValidCommandTopic(deviceID, topic string) bool {
	return topic != "" && !strings.ContainsAny(topic, "+#") &&
		Allowed(Principal{Role: RoleOperational, DeviceID: deviceID}, CommandTopic(deviceID, topic), Publish)
}

// Send publishes a command at QoS 1. It reports whether the device had a
// live session on this node when the command was sent; with Retain the
// command also waits for the device's next subscription.
func (g *Gateway) Send(_ context.Context, c Command) (bool, error) {
	if !safeID(c.DeviceID) {
		return false, fmt.Errorf("device id %q: %w", c.DeviceID, ErrBadCommand)
	}
	topic := CommandTopic(c.DeviceID, c.Topic)
	if !ValidCommandTopic(c.DeviceID, c.Topic) {
		return false, fmt.Errorf("command topic %q: use one or more levels of letters, digits and punctuation, without wildcards: %w", c.Topic, ErrBadCommand)
	}
	if len(c.Payload) > MaxCommandBytes {
		return false, fmt.Errorf("payload is %d bytes, at most %d allowed: %w", len(c.Payload), MaxCommandBytes, ErrBadCommand)
	}
	if err := g.broker.Publish(topic, c.Payload, c.Retain, 1); err != nil {
		return false, fmt.Errorf("gateway: publish command to %s: %w", c.DeviceID, err)
	}
	return g.sessions.connected(c.DeviceID), nil
}

// rotatePayload is the body of a rotate command.
type rotatePayload struct {
	RequestedAt time.Time `json:"requestedAt"`
	Reason      string    `json:"reason,omitempty"`
}

// Rotate tells a device to renew its operational certificate. The command
// is retained, so a device that is offline now renews when it next
// subscribes.
func (g *Gateway) Rotate(ctx context.Context, deviceID, reason string) (bool, error) {
	payload, err := json.Marshal(rotatePayload{RequestedAt: time.Now().UTC(), Reason: reason})
	if err != nil {
		return false, err
	}
	return g.Send(ctx, Command{DeviceID: deviceID, Topic: RotateCommand, Payload: payload, Retain: true})
}

// Broadcast publishes a message at QoS 1 on fleet/{group}/{topic}, the
// broadcast topics that devices (and operator consoles) in the group may
// subscribe to; no device may publish there. The behaviour detector sends
// alerts to operators this way (docs/detection.md).
func (g *Gateway) Broadcast(_ context.Context, group, topic string, payload []byte, retain bool) error {
	full := broadcastRoot + "/" + group + "/" + topic
	if !safeID(group) || topic == "" || strings.ContainsAny(topic, "+#") ||
		!Allowed(Principal{Role: RoleOperational, DeviceID: "x", Groups: []string{group}}, full, Subscribe) {
		return fmt.Errorf("broadcast topic %q: use a group name and one or more levels without wildcards: %w", full, ErrBadCommand)
	}
	if len(payload) > MaxCommandBytes {
		return fmt.Errorf("payload is %d bytes, at most %d allowed: %w", len(payload), MaxCommandBytes, ErrBadCommand)
	}
	if err := g.broker.Publish(full, payload, retain, 1); err != nil {
		return fmt.Errorf("gateway: publish to %s: %w", full, err)
	}
	return nil
}
