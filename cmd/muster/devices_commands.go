package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newDevicesSendCmd(g *globals) *cobra.Command {
	var req client.CommandRequest
	var payloadFile string
	cmd := &cobra.Command{
		Use:   "send ID",
		Short: "Publish a command to a device through the gateway",
		Long: `Publish a command to a device on devices/ID/commands/TOPIC at QoS 1. TOPIC is one
or more levels without wildcards; the payload (at most 64 KiB) comes from
--payload or --payload-file (- for standard input). --retain keeps the command
for a device that is offline now.`,
		Example: `  muster devices send dev_01j9... --topic reboot --payload '{"delay":5}'
  muster devices send dev_01j9... --topic config/network --payload-file net.json --retain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if payloadFile != "" {
				b, err := readInput(cmd, payloadFile)
				if err != nil {
					return err
				}
				req.Payload = string(b)
			}
			return g.sendCommand(cmd, func(ctx context.Context, c *client.Client) (*client.CommandSent, error) {
				return c.SendCommand(ctx, args[0], req)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Topic, "topic", "", "command topic below devices/ID/commands/ (required)")
	f.StringVar(&req.Payload, "payload", "", "command payload")
	f.StringVar(&payloadFile, "payload-file", "", "read the payload from this file, - for standard input")
	f.BoolVar(&req.Retain, "retain", false, "keep the command for a device that is offline now")
	markRequired(cmd, "topic")
	cmd.MarkFlagsMutuallyExclusive("payload", "payload-file")
	return cmd
}

func newDevicesRotateCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rotate ID",
		Short: "Tell a device to renew its operational certificate",
		Long: `Send the retained rotate command: the device renews its operational certificate
now, or when it next connects if it is offline.`,
		Example: "  muster devices rotate dev_01j9... --reason 'yearly rotation'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.sendCommand(cmd, func(ctx context.Context, c *client.Client) (*client.CommandSent, error) {
				return c.RotateDevice(ctx, args[0], reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the device and its history")
	return cmd
}

// sendCommand sends one command with send and prints where it went.
func (g *globals) sendCommand(cmd *cobra.Command, send func(context.Context, *client.Client) (*client.CommandSent, error)) error {
	c, err := g.newClient(cmd)
	if err != nil {
		return err
	}
	sent, err := send(cmd.Context(), c)
	if err != nil {
		return err
	}
	return g.printer(cmd).print(sent, func(t *table) {
		t.row("DEVICE", "TOPIC", "CONNECTED")
		t.row(sent.DeviceID, sent.Topic, strconv.FormatBool(sent.Connected))
	})
}
