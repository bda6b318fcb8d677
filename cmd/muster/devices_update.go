package main

import (
	"errors"
	"slices"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newDevicesUpdateCmd(g *globals) *cobra.Command {
	var (
		file                 string
		owner, site          string
		lat, lon             float64
		groups, tags         []string
		attrs, unset, fwVers []string
		ifVersion            int64
	)
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change a device's inventory, firmware, attributes or other sections",
		Long: `Change a device. -f takes a DevicePatch JSON file ("-" for stdin): each section
it names replaces that section whole. The flags edit single fields: the
command reads the device, changes those fields in its current section and
sends the section back, guarded by the version it read (or --if-version), so
a concurrent change is reported rather than overwritten. --group and --tag
replace the lists; an empty --group= clears them.`,
		Example: `  muster devices update dev_01j9... --owner acme --site plant-7 --tag pilot --tag eu
  muster devices update dev_01j9... --firmware modem=2.4.1 --attr color=red --unset-attr legacy
  muster devices update dev_01j9... -f patch.json --if-version 7`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			var patch client.DevicePatch
			if file != "" {
				if err := readJSONFile(cmd, "file", file, &patch); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			editsInventory := f.Changed("owner") || f.Changed("site") || f.Changed("lat") || f.Changed("lon") ||
				f.Changed("group") || f.Changed("tag")
			editsFirmware := len(fwVers) > 0
			if f.Changed("lat") != f.Changed("lon") {
				return errors.New("--lat and --lon must be given together")
			}
			firmware, err := parsePairs("firmware", fwVers)
			if err != nil {
				return err
			}
			setAttrs, err := parsePairs("attr", attrs)
			if err != nil {
				return err
			}

			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			// Sections are replaced whole, so a flag that edits one field
			// must start from the device's current section.
			if (editsInventory && patch.Inventory == nil) || (editsFirmware && patch.Provisioning == nil) {
				cur, err := c.GetDevice(cmd.Context(), id)
				if err != nil {
					return err
				}
				if !f.Changed("if-version") {
					ifVersion = cur.Version
				}
				if editsInventory && patch.Inventory == nil {
					patch.Inventory = &cur.Inventory
				}
				if editsFirmware && patch.Provisioning == nil {
					patch.Provisioning = &cur.Provisioning
				}
			}
			if editsInventory {
				inv := patch.Inventory
				override(cmd, "owner", &inv.Owner, owner)
				override(cmd, "site", &inv.Location.Site, site)
				override(cmd, "lat", &inv.Location.Lat, &lat)
				override(cmd, "lon", &inv.Location.Lon, &lon)
				override(cmd, "group", &inv.Groups, nonEmpty(groups))
				override(cmd, "tag", &inv.Tags, nonEmpty(tags))
			}
			for component, version := range firmware {
				setFirmware(patch.Provisioning, component, version)
			}
			for k, v := range setAttrs {
				if patch.Attributes == nil {
					patch.Attributes = map[string]*string{}
				}
				patch.Attributes[k] = &v
			}
			for _, k := range unset {
				if patch.Attributes == nil {
					patch.Attributes = map[string]*string{}
				}
				patch.Attributes[k] = nil
			}
			if isEmptyPatch(patch) {
				return errors.New("nothing to update: give -f patch.json or at least one field flag (see --help)")
			}

			d, err := c.UpdateDevice(cmd.Context(), id, patch, ifVersion)
			if err != nil {
				return err
			}
			return g.printDevice(cmd, d)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "DevicePatch JSON file (\"-\" for stdin); flags override it")
	f.StringVar(&owner, "owner", "", "owner")
	f.StringVar(&site, "site", "", "installation site")
	f.Float64Var(&lat, "lat", 0, "latitude of the site (with --lon)")
	f.Float64Var(&lon, "lon", 0, "longitude of the site (with --lat)")
	f.StringArrayVar(&groups, "group", nil, "inventory group (repeatable; replaces the list)")
	f.StringArrayVar(&tags, "tag", nil, "inventory tag (repeatable; replaces the list)")
	f.StringArrayVar(&attrs, "attr", nil, "set attribute key=value (repeatable)")
	f.StringArrayVar(&unset, "unset-attr", nil, "delete attribute key (repeatable)")
	f.StringArrayVar(&fwVers, "firmware", nil, "installed firmware component=version (repeatable)")
	f.Int64Var(&ifVersion, "if-version", 0, "apply only if the device is still at this version")
	_ = cmd.MarkFlagFilename("file", "json")
	return cmd
}

// setFirmware records version as the installed version of component,
// replacing the entry for that component or adding one.
func setFirmware(p *client.Provisioning, component, version string) {
	i := slices.IndexFunc(p.Firmware, func(f client.FirmwareVersion) bool { return f.Component == component })
	if i < 0 {
		p.Firmware = append(p.Firmware, client.FirmwareVersion{Component: component, Version: version})
		return
	}
	if p.Firmware[i].Version != version {
		// The SBOM and install time described the old version.
		p.Firmware[i] = client.FirmwareVersion{Component: component, Version: version}
	}
}

func isEmptyPatch(p client.DevicePatch) bool {
	return p.Identity == nil && p.Manufacturing == nil && p.Provisioning == nil && p.Inventory == nil &&
		p.Compliance == nil && len(p.Attributes) == 0
}
