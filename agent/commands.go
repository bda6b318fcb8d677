package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RotateCommand is the command Muster sends (muster devices rotate) to make
// a device renew its operational certificate now.
const RotateCommand = "rotate"

// CommandTopics is the MQTT subscription a device makes, with its
// operational certificate, to receive Muster's commands.
func CommandTopics(deviceID string) string { return "devices/" + deviceID + "/commands/#" }

// Command is one command a device received from Muster.
type Command struct {
	// Name is the topic below devices/{id}/commands/, e.g. "rotate".
	Name    string
	Payload []byte
}

// RotateRequest is the payload of a rotate command.
type RotateRequest struct {
	RequestedAt time.Time `json:"requestedAt"`
	Reason      string    `json:"reason,omitempty"`
}

// issueBackdate is how far Muster backdates NotBefore of the certificates
// it issues (for devices with slow clocks), so issue time = NotBefore +
// issueBackdate.
const issueBackdate = 5 * time.Minute

// HandleCommand interprets a message the device's MQTT client received on
// CommandTopics. The agent brings no MQTT client of its own: firmware uses
// the one it has and hands every command message here. Commands the agent
// acts on itself (rotate: renew the operational certificate now) are done
// and reported with handled true; any other command is returned for the
// firmware to act on.
func (a *Agent) HandleCommand(ctx context.Context, topic string, payload []byte) (cmd Command, handled bool, err error) {
	c := a.Credentials()
	if c == nil {
		return Command{}, false, errors.New("agent: no credentials: provision before handling commands")
	}
	name, ok := strings.CutPrefix(topic, "devices/"+c.DeviceID+"/commands/")
	if !ok || name == "" {
		return Command{}, false, fmt.Errorf("agent: %q is not a command topic of device %s", topic, c.DeviceID)
	}
	cmd = Command{Name: name, Payload: payload}
	if name == RehomeCommand {
		return cmd, true, a.applyRehome(ctx, payload)
	}
	if name != RotateCommand {
		return cmd, false, nil
	}
	var req RotateRequest
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &req); err != nil {
			return cmd, false, fmt.Errorf("agent: rotate command: %w", err)
		}
	}
	// Rotate commands are retained, so a device sees the same one again at
	// every connection: renew only when the certificate held was issued
	// before the command was given. Certificate times have whole seconds,
	// hence the second of slack.
	if !req.RequestedAt.IsZero() && !c.Certificate.NotBefore.Add(issueBackdate+time.Second).Before(req.RequestedAt) {
		return cmd, true, nil
	}
	a.log.InfoContext(ctx, "agent: renewing on Muster's rotate command", "reason", req.Reason)
	if _, err := a.Renew(ctx); err != nil {
		return cmd, false, fmt.Errorf("agent: rotate command: %w", err)
	}
	return cmd, true, nil
}
