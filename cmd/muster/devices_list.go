package main

import (
	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newDevicesListCmd(g *globals) *cobra.Command {
	var (
		filters deviceFilterFlags
		opts    client.ListOptions
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List devices, filtered",
		Long: `List devices in registration order. Without --all one page is printed (100
devices unless --limit says otherwise) and the cursor of the next page is
shown on stderr; --all follows every page, printing as pages arrive.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := filters.value()
			if err != nil {
				return err
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(true, "ID", "FACTORY", "MODEL", "SERIAL", "STATE", "OWNER", "UPDATED")
			add := func(d *client.Device) {
				out.add(d, d.ID, d.Identity.Factory, d.Identity.Model, d.Identity.Serial,
					string(d.Lifecycle.State), d.Inventory.Owner, timestamp(d.UpdatedAt))
			}
			return printListing(cmd, g, out, all, "devices", c.Devices(cmd.Context(), filter),
				func() (*client.Page[client.Device], error) { return c.ListDevices(cmd.Context(), filter, opts) }, add)
		},
	}
	filters.bind(cmd)
	bindPageFlags(cmd, &opts, &all, "devices")
	return cmd
}
