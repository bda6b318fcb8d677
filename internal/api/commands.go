package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
)

// DeviceCommander publishes commands to devices over the device gateway.
// *gateway.Gateway implements it; without one the command routes answer
// 503. Both methods report whether the device had a live session.
type DeviceCommander interface {
	Send(ctx context.Context, c gateway.Command) (bool, error)
	Rotate(ctx context.Context, deviceID, reason string) (bool, error)
}

// deviceEventRecorder appends an event to a device's history without
// changing the device. *store.Store implements it; a Store without it
// sends commands unrecorded.
type deviceEventRecorder interface {
	RecordDeviceEvent(ctx context.Context, deviceID, actor string, ch store.Change) error
}

// CommandRequest is the body of POST /v1/devices/{id}/commands.
type CommandRequest struct {
	// Topic is below devices/{id}/commands/, for example "reboot" or
	// "config/network"; no wildcards.
	Topic string `json:"topic"`
	// Payload is published as is (UTF-8 text; JSON is typical), at most
	// 64 KiB.
	Payload string `json:"payload,omitempty"`
	// Retain keeps the command for a device that is offline now.
	Retain bool `json:"retain,omitempty"`
}

// DeviceRotateRequest is the body of POST /v1/devices/{id}/rotate.
type DeviceRotateRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CommandSent is the answer of the command routes: the command was
// published at QoS 1 to the full topic.
type CommandSent struct {
	DeviceID string `json:"deviceId"`
	Topic    string `json:"topic"`
	// Connected says whether the device had a live session on the node
	// that published the command.
	Connected bool `json:"connected"`
}

// commandRoutes are the routes that reach devices through the gateway.
func commandRoutes() []route {
	return []route{
		{name: "sendDeviceCommand", method: "POST", pattern: "/v1/devices/{id}/commands", perm: PermDevicesCommand, status: http.StatusAccepted,
			summary: "Publish a command to a device on devices/{id}/commands/{topic} (QoS 1)", endpoint: withBody((*Server).sendCommand)},
		{name: "rotateDevice", method: "POST", pattern: "/v1/devices/{id}/rotate", perm: PermDevicesCommand, status: http.StatusAccepted,
			summary: "Tell a device to renew its operational certificate (a retained rotate command)", endpoint: withBody((*Server).rotateDevice)},
	}
}

func (s *Server) sendCommand(r *http.Request, in *CommandRequest) (*CommandSent, error) {
	return s.command(r, gateway.Command{Topic: in.Topic, Payload: []byte(in.Payload), Retain: in.Retain},
		func(ctx context.Context, c gateway.Command) (bool, error) { return s.commander.Send(ctx, c) })
}

func (s *Server) rotateDevice(r *http.Request, in *DeviceRotateRequest) (*CommandSent, error) {
	return s.command(r, gateway.Command{Topic: gateway.RotateCommand, Retain: true},
		func(ctx context.Context, c gateway.Command) (bool, error) {
			return s.commander.Rotate(ctx, c.DeviceID, in.Reason)
		})
}

// command checks the device and the command, sends it with send and
// records it in the device's history.
func (s *Server) command(r *http.Request, c gateway.Command, send func(context.Context, gateway.Command) (bool, error)) (*CommandSent, error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return nil, err
	}
	if s.commander == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "this server has no device gateway to send commands through"}
	}
	c.DeviceID = d.ID
	switch {
	case !gateway.ValidCommandTopic(d.ID, c.Topic):
		return nil, validationError("topic", "use one or more levels below devices/%s/commands/, without wildcards (+, #)", d.ID)
	case len(c.Payload) > gateway.MaxCommandBytes:
		return nil, validationError("payload", "is %d bytes, at most %d allowed", len(c.Payload), gateway.MaxCommandBytes)
	}
	connected, err := send(r.Context(), c)
	if errors.Is(err, gateway.ErrBadCommand) {
		// Topic and payload passed above; what is left is the device id,
		// which the gateway cannot address.
		return nil, validationError("id", "%s", err.Error())
	} else if err != nil {
		return nil, err
	}
	topic := gateway.CommandTopic(d.ID, c.Topic)
	if rec, ok := s.store.(deviceEventRecorder); ok {
		data := map[string]any{"topic": topic, "retain": c.Retain, "connected": connected}
		if c.Topic != gateway.RotateCommand {
			data["bytes"] = len(c.Payload)
		}
		if err := rec.RecordDeviceEvent(r.Context(), d.ID, principal(r).Actor(), store.Change{Type: gateway.EventCommandSent, Data: data}); err != nil {
			// The command is out; failing now would invite a resend.
			s.log.Error("recording a sent command", "device", d.ID, "topic", topic, "err", err)
		}
	}
	return &CommandSent{DeviceID: d.ID, Topic: topic, Connected: connected}, nil
}
