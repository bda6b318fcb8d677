package main

import (
	"fmt"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newDevicesListCmd(g *globals) *cobra.Command {
	var (
		filter client.DeviceFilter
		state  string
		attrs  []string
		opts   client.ListOptions
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List devices, filtered",
		Long: `List devices in registration order. Without --all one page is printed (100
devices unless --limit says otherwise) and the cursor of the next page is
shown on stderr; --all follows every page, printing as pages arrive.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			filter.State = client.State(state)
			if filter.Attributes, err = parsePairs("attr", attrs); err != nil {
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
			if all {
				for d, err := range c.Devices(cmd.Context(), filter) {
					if err != nil {
						_ = out.close("")
						return err
					}
					add(d)
				}
				return out.close("")
			}
			page, err := c.ListDevices(cmd.Context(), filter, opts)
			if err != nil {
				return err
			}
			for i := range page.Items {
				add(&page.Items[i])
			}
			if err := out.close(page.NextCursor); err != nil {
				return err
			}
			if page.NextCursor != "" && !g.jsonOutput() {
				fmt.Fprintf(cmd.ErrOrStderr(), "More devices match: add --all, or --cursor %s for the next page.\n", page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "lifecycle state")
	f.StringVar(&filter.Model, "model", "", "model")
	f.StringVar(&filter.Batch, "batch", "", "manufacturing batch")
	f.StringVar(&filter.Owner, "owner", "", "owner")
	f.StringVar(&filter.Factory, "factory", "", "factory")
	f.StringVar(&filter.Group, "group", "", "inventory group the device is in")
	f.StringVar(&filter.Tag, "tag", "", "inventory tag the device has")
	f.StringVar(&filter.SerialPrefix, "serial", "", "serial number prefix")
	f.StringVar(&filter.Component, "component", "", "name of a component the device's BOM lists")
	f.StringArrayVar(&attrs, "attr", nil, "attribute key=value (repeat: all must match)")
	f.IntVar(&opts.Limit, "limit", 0, "devices per page, 1 to 1000 (default 100)")
	f.StringVar(&opts.Cursor, "cursor", "", "start at this page cursor (from a previous listing)")
	f.BoolVar(&all, "all", false, "list every matching device, following all pages")
	cmd.MarkFlagsMutuallyExclusive("all", "limit")
	cmd.MarkFlagsMutuallyExclusive("all", "cursor")
	_ = cmd.RegisterFlagCompletionFunc("state", completeStates)
	return cmd
}
