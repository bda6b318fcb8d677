package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/vuln"
)

func newVulnsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vulns",
		Short: "Import OSV advisories and list the devices they affect",
		Long: `Muster matches the firmware versions of device records and the components of
their CycloneDX BOMs against security advisories in the OSV format
(https://ossf.github.io/osv-schema/), with OSV's range semantics. Import
advisories with "muster vulns import", list the affected devices with
"muster vulns devices"; the audit's vulnerable-firmware check records them as
findings.`,
	}
	cmd.AddCommand(newVulnsImportCmd(g), newVulnsListCmd(g), newVulnsDevicesCmd(g))
	return cmd
}

func newVulnsImportCmd(g *globals) *cobra.Command {
	var replace bool
	cmd := &cobra.Command{
		Use:   "import DIR|ARCHIVE",
		Short: "Import OSV advisories from a directory, a .zip, a .tar.gz or a .json file",
		Long: `Import every *.json OSV record of a directory (searched recursively), a .zip
or .tar.gz archive (such as an ecosystem's all.zip from osv.dev), or a single
file. Every record is checked before anything is sent; a bad one stops the
import with its file name. The import is one transaction: advisories are
added, or replaced by id when their record changed. With --replace the stored
set becomes exactly this import.`,
		Example: "  muster vulns import ./advisories\n  muster vulns import osv-all.zip --replace",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := vuln.Load(args[0])
			if err != nil {
				return err
			}
			files := make([]client.AdvisoryFile, len(recs))
			for i, r := range recs {
				files[i] = client.AdvisoryFile{Source: r.File, Record: r.Raw}
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.ImportAdvisories(cmd.Context(), files, replace)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(res, func(t *table) {
				t.row("ADVISORIES", fmt.Sprintf("%d read from %s", len(recs), args[0]))
				t.row("ADDED", fmt.Sprint(res.Added))
				t.row("UPDATED", fmt.Sprint(res.Updated))
				t.row("UNCHANGED", fmt.Sprint(res.Unchanged))
				t.row("REMOVED", fmt.Sprint(res.Removed))
			})
		},
	}
	cmd.Flags().BoolVar(&replace, "replace", false, "remove stored advisories that this import does not contain")
	return cmd
}

func newVulnsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the imported advisories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			advs, err := c.Advisories(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "MODIFIED", "PACKAGES", "SUMMARY")
			for i := range advs {
				a := &advs[i]
				var pkgs []string
				for _, p := range a.Packages {
					pkgs = append(pkgs, strings.TrimPrefix(p.Ecosystem+"/", "/")+p.Name)
				}
				out.add(a, a.ID, timestamp(a.Modified), strings.Join(pkgs, ","), a.Summary)
			}
			return out.close("")
		},
	}
}

func newVulnsDevicesCmd(g *globals) *cobra.Command {
	var device string
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the devices whose firmware or BOM components the advisories affect",
		Long: `Match the fleet (or one device, with --device) against the imported advisories
now and list each affected component with the advisory and the versions that
fix it.`,
		Example: "  muster vulns devices\n  muster vulns devices --device dev_01j9...",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			dvs, err := c.Vulnerabilities(cmd.Context(), device)
			if err != nil {
				return err
			}
			if g.jsonOutput() {
				return g.printer(cmd).print(map[string]any{"items": dvs}, nil)
			}
			return g.printer(cmd).print(dvs, func(t *table) {
				t.row("DEVICE", "COMPONENT", "VERSION", "SOURCE", "ADVISORY", "FIXED")
				for _, d := range dvs {
					for _, m := range d.Matches {
						t.row(d.DeviceID, m.Component.Name, m.Component.Version, m.Component.Source, m.AdvisoryID, strings.Join(m.Fixed, ","))
					}
				}
			})
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "only this device")
	return cmd
}
