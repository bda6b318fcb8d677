package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newDevicesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "devices",
		Aliases: []string{"dev"}, // "device" is the command-line device (device.go)
		Short:   "Register devices and manage their lifecycle record",
	}
	cmd.AddCommand(
		newDevicesCreateCmd(g),
		newDevicesGetCmd(g),
		newDevicesListCmd(g),
		newDevicesCountCmd(g),
		newDevicesUpdateCmd(g),
		newDevicesStateCmd(g),
		newDevicesQCCmd(g),
		newDevicesTestCmd(g),
		newDevicesMaintenanceCmd(g),
		newDevicesDecommissionCmd(g),
		newDevicesDisposeCmd(g),
		newDevicesHistoryCmd(g),
		newDevicesVerifyCmd(g),
		newDevicesPassportCmd(g),
		newDevicesComponentsCmd(g),
		newDevicesMetricsCmd(g),
		newDevicesSendCmd(g),
		newDevicesRotateCmd(g),
	)
	return cmd
}

func newDevicesGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a device's record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			d, err := c.GetDevice(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printDevice(cmd, d)
		},
	}
}

// deviceChange returns a RunE for commands that make one change to the
// device named by the first argument and print the updated device briefly.
func (g *globals) deviceChange(change func(ctx context.Context, c *client.Client, args []string) (*client.Device, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.newClient(cmd)
		if err != nil {
			return err
		}
		d, err := change(cmd.Context(), c, args)
		if err != nil {
			return err
		}
		return g.printer(cmd).print(d, func(t *table) {
			t.row("ID", "STATE", "VERSION", "UPDATED")
			t.row(d.ID, string(d.Lifecycle.State), strconv.FormatInt(d.Version, 10), timestamp(d.UpdatedAt))
		})
	}
}

// printDevice prints a whole device: as JSON, or as a key-value summary of
// what people look for first. "devices passport" shows everything.
func (g *globals) printDevice(cmd *cobra.Command, d *client.Device) error {
	return g.printer(cmd).print(d, func(t *table) {
		state := string(d.Lifecycle.State)
		if !d.Lifecycle.StateChangedAt.IsZero() {
			state += " (since " + timestamp(d.Lifecycle.StateChangedAt) + ")"
		}
		t.row("ID", d.ID)
		t.row("Version", strconv.FormatInt(d.Version, 10))
		t.row("State", state)
		t.row("Factory", d.Identity.Factory)
		t.row("Model", d.Identity.Model)
		t.row("Serial", d.Identity.Serial)
		t.row("Hardware revision", d.Identity.HardwareRevision)
		t.row("Batch", d.Identity.Batch)
		t.row("Owner", d.Inventory.Owner)
		t.row("Site", site(d.Inventory.Location))
		t.row("Groups", strings.Join(d.Inventory.Groups, ", "))
		t.row("Tags", strings.Join(d.Inventory.Tags, ", "))
		t.row("Attributes", joinPairs(d.Attributes))
		t.row("Firmware", firmware(d.Provisioning.Firmware))
		t.row("QC results", qcSummary(d.Manufacturing.QC))
		t.row("Tests", strconv.Itoa(len(d.Provisioning.Tests)))
		t.row("Maintenance", strconv.Itoa(len(d.Maintenance)))
		if eol := d.EndOfLife; eol.DecommissionedAt != nil {
			t.row("Decommissioned", timestamp(*eol.DecommissionedAt)+": "+eol.DecommissionReason)
		}
		if p := d.EndOfLife.Disposal; p != nil {
			t.row("Disposal", strings.Join(nonEmpty([]string{p.Method, p.Facility, p.Certificate}), ", "))
		}
		t.row("Created", timestamp(d.CreatedAt))
		t.row("Updated", timestamp(d.UpdatedAt))
	})
}

func site(l client.Location) string {
	s := l.Site
	if l.Lat != nil && l.Lon != nil {
		s = strings.TrimSpace(fmt.Sprintf("%s (%g, %g)", s, *l.Lat, *l.Lon))
	}
	return s
}

func joinPairs(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

func firmware(fw []client.FirmwareVersion) string {
	parts := make([]string, len(fw))
	for i, f := range fw {
		parts[i] = f.Component + " " + f.Version
	}
	return strings.Join(parts, ", ")
}

func qcSummary(qc []client.QCResult) string {
	if len(qc) == 0 {
		return ""
	}
	failed := 0
	for _, q := range qc {
		if r := strings.ToLower(q.Result); r == "fail" || r == "failed" {
			failed++
		}
	}
	return fmt.Sprintf("%d (%d failed)", len(qc), failed)
}
