package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDevicesHistoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history ID",
		Short: "Show a device's hash-chained history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			events, err := c.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printEvents(cmd, events)
		},
	}
}

func newDevicesVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify ID",
		Short: "Verify a device's history chain (exit status 1 when broken)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			v, err := c.VerifyHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printVerification(cmd, "history", v)
		},
	}
}

// Passport formats.
const (
	passportMarkdown = "md"
	passportJSON     = "json"
)

func newDevicesPassportCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "passport ID",
		Short: "Print a device's passport: its whole life in one document",
		Long: `Print a device's passport: identity, manufacturing, provisioning, inventory,
lifecycle, maintenance, end of life and the verified history. Markdown by
default, JSON with --format json or -o json.`,
		Example: `  muster devices passport dev_01j9... > passport.md`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" {
				format = passportMarkdown
				if g.jsonOutput() {
					format = passportJSON
				}
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			switch format {
			case passportMarkdown:
				md, err := c.PassportMarkdown(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(md)
				return err
			case passportJSON:
				p, err := c.Passport(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), p)
			}
			return fmt.Errorf("unknown passport format %q: use --format md or --format json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "md or json (default md, json with -o json)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(
		[]string{passportMarkdown + "\tMarkdown, for people", passportJSON + "\tJSON, for programs"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDevicesComponentsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "components ID",
		Short: "List the components of a device's bill of materials",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			comps, err := c.Components(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "TYPE", "GROUP", "NAME", "VERSION", "PURL")
			for i := range comps {
				x := &comps[i]
				out.add(x, x.Type, x.Group, x.Name, x.Version, x.PURL)
			}
			return out.close("")
		},
	}
}
