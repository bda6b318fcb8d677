package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/progress"
	"github.com/muster-iot/muster/internal/region"
)

func newRegionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "regions",
		Aliases: []string{"region"},
		Short:   "Add, change, list, drain and delete regions (docs/regions.md)",
	}
	cmd.AddCommand(newRegionsAddCmd(g), newRegionsListCmd(g), newRegionsGetCmd(g), newRegionsUpdateCmd(g),
		newRegionsStatusCmd(g, "enable", client.RegionEnabled), newRegionsStatusCmd(g, "disable", client.RegionDisabled),
		newRegionsDrainCmd(g), newRegionsDeleteCmd(g))
	return cmd
}

// regionFlags are the flags add and update share.
type regionFlags struct {
	provision, mqtt, probe, location, status string
	weight                                   int
	ca                                       bool
}

func (f *regionFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.provision, "provision-url", "", "the region's device listener, e.g. https://eu.example:9443")
	cmd.Flags().StringVar(&f.mqtt, "mqtt-url", "", "the region's MQTT gateway, e.g. mqtts://eu.example:8883")
	cmd.Flags().StringVar(&f.probe, "probe-url", "", "what devices time, e.g. https://eu.example:9443/v1/probe (default: provision URL + /v1/probe)")
	cmd.Flags().StringVar(&f.location, "location", "", "LAT,LON in decimal degrees, for the geo policy")
	cmd.Flags().IntVar(&f.weight, "weight", 1, "share under the weighted policy (0 takes none)")
	cmd.Flags().StringVar(&f.status, "status", "", "enabled, draining or disabled")
	cmd.Flags().BoolVar(&f.ca, "ca", false, "create the region's own operational CA (signed by the root); its devices' certificates are issued by it")
}

func printRegion(g *globals, cmd *cobra.Command, r *client.Region) error {
	return g.printer(cmd).print(r, func(t *table) {
		t.row("Name", r.Name)
		t.row("Status", r.Status)
		t.row("Provision URL", r.ProvisionURL)
		t.row("MQTT URL", r.MQTTURL)
		t.row("Probe URL", r.ProbeURL)
		t.row("Location", location(r.Location))
		t.row("Weight", strconv.Itoa(r.Weight))
		t.row("Devices", strconv.Itoa(r.Devices))
		t.row("CA", cmp.Or(r.CAID, "shared operational CA"))
		t.row("Version", strconv.FormatInt(r.Version, 10))
	})
}

func location(c *client.Coordinates) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%g,%g", c.Lat, c.Lon)
}

func parseCoordinates(s string) (*client.Coordinates, error) {
	l, err := region.ParseLocation(s)
	if err != nil {
		return nil, err
	}
	return &client.Coordinates{Lat: l.Lat, Lon: l.Lon}, nil
}

func newRegionsAddCmd(g *globals) *cobra.Command {
	var f regionFlags
	cmd := &cobra.Command{
		Use:     "add NAME --provision-url URL --mqtt-url URL",
		Short:   "Add a region",
		Example: "  muster regions add eu-west --provision-url https://eu.example:9443 --mqtt-url mqtts://eu.example:8883 --location 48.85,2.35 --weight 2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := client.Region{Name: args[0], ProvisionURL: f.provision, MQTTURL: f.mqtt, ProbeURL: f.probe, Weight: f.weight, Status: f.status, CA: f.ca}
			if r.ProbeURL == "" && r.ProvisionURL != "" {
				r.ProbeURL = r.ProvisionURL + "/v1/probe"
			}
			if f.location != "" {
				var err error
				if r.Location, err = parseCoordinates(f.location); err != nil {
					return err
				}
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.CreateRegion(cmd.Context(), r)
			if err != nil {
				return err
			}
			return printRegion(g, cmd, out)
		},
	}
	f.register(cmd)
	markRequired(cmd, "provision-url", "mqtt-url")
	return cmd
}

func newRegionsUpdateCmd(g *globals) *cobra.Command {
	var f regionFlags
	var clear bool
	cmd := &cobra.Command{
		Use:     "update NAME [flags]",
		Short:   "Change a region's endpoints, location, weight or status",
		Example: "  muster regions update eu-west --probe-url https://127.0.0.1:7001/v1/probe --weight 3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p client.RegionPatch
			str := func(name string, v string) *string {
				if cmd.Flags().Changed(name) {
					return &v
				}
				return nil
			}
			p.ProvisionURL, p.MQTTURL, p.ProbeURL, p.Status = str("provision-url", f.provision), str("mqtt-url", f.mqtt), str("probe-url", f.probe), str("status", f.status)
			if cmd.Flags().Changed("weight") {
				p.Weight = &f.weight
			}
			if f.location != "" {
				var err error
				if p.Location, err = parseCoordinates(f.location); err != nil {
					return err
				}
			}
			p.ClearLocation, p.CA = clear, f.ca
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.UpdateRegion(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			return printRegion(g, cmd, out)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&clear, "clear-location", false, "remove the region's location")
	return cmd
}

func newRegionsStatusCmd(g *globals, verb, status string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: fmt.Sprintf("Set a region's status to %s", status),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.UpdateRegion(cmd.Context(), args[0], client.RegionPatch{Status: &status})
			if err != nil {
				return err
			}
			return printRegion(g, cmd, out)
		},
	}
}

func newRegionsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List regions with the number of devices homed in each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			rs, err := c.ListRegions(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "NAME", "STATUS", "DEVICES", "WEIGHT", "LOCATION", "PROVISION URL", "MQTT URL")
			for i := range rs {
				r := &rs[i]
				out.add(r, r.Name, r.Status, strconv.Itoa(r.Devices), strconv.Itoa(r.Weight), location(r.Location), r.ProvisionURL, r.MQTTURL)
			}
			return out.close("")
		},
	}
}

func newRegionsGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a region",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.GetRegion(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printRegion(g, cmd, r)
		},
	}
}

func newRegionsDrainCmd(g *globals) *cobra.Command {
	var batch int
	cmd := &cobra.Command{
		Use:   "drain NAME",
		Short: "Mark a region draining and move all its devices to other regions, in batches",
		Long: `drain marks the region draining (no new devices) and moves its devices, a batch
per call, to the region their last measurements favour (lowest-latency, else
weighted). Each move is a device.rehomed history event; connected devices get a
retained rehome command. Interrupted, it resumes where it stopped when run again.
A progress bar on stderr shows the devices moved.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			var bar *progress.Bar
			moved := 0
			var last *client.DrainResult
			for {
				res, err := c.DrainRegion(cmd.Context(), args[0], batch)
				if err != nil {
					return err
				}
				if bar == nil {
					bar = progress.New(cmd.ErrOrStderr(), int64(len(res.Moved)+res.Remaining), progress.Options{Unit: "devices"})
				}
				for range res.Moved {
					bar.Add(true)
				}
				moved += len(res.Moved)
				last = res
				if res.Remaining == 0 || len(res.Moved) == 0 {
					break
				}
			}
			bar.Finish()
			result := struct {
				Region    string `json:"region"`
				Moved     int    `json:"moved"`
				Remaining int    `json:"remaining"`
			}{args[0], moved, last.Remaining}
			return g.printer(cmd).print(result, func(t *table) {
				fmt.Fprintf(t.tw, "Region %s is draining: %d devices moved, %d remain.\n", args[0], moved, last.Remaining)
			})
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 100, "devices moved per call (1-1000)")
	return cmd
}

func newRegionsDeleteCmd(g *globals) *cobra.Command {
	cmd := newDeleteCmd(g, "Region", "Delete a region that is home to no device (drain it first)",
		func(ctx context.Context, c *client.Client, name string) error { return c.DeleteRegion(ctx, name) })
	cmd.Long = `Delete a region. A region that devices still name as their home is refused,
with their number: move them first with 'muster regions drain NAME' until none remain.

The region's own operational CA, if it has one, is retired with it: it issues
nothing more, and the certificates it issued stay valid until they expire or
are revoked (drained devices renew from their new home's CA). Adding a region
of the same name again with --ca creates a new CA.`
	cmd.Example = "  muster regions drain eu-west   # repeat until 0 remain\n  muster regions delete eu-west"
	return cmd
}
