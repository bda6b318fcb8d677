package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newIntelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "intel",
		Short: "Threat-intelligence feeds: IP, CIDR and domain lists, STIX 2.1 bundles",
		Long: `Indicator feeds are matched against the source addresses of devices'
connections and the destination addresses in their reports; a match raises an
alert through the intel rule (docs/detection.md). Each import replaces the
feed's indicators atomically.`,
	}
	var feed, format, desc string
	imp := &cobra.Command{
		Use:   "import FILE --feed NAME",
		Short: "Import a feed from a file (- for stdin), replacing its indicators",
		Long: `Import FILE as feed NAME. A list has one IP address, CIDR range or domain per line
('#' starts a comment); a STIX 2.1 bundle's indicators are read from their
patterns ([ipv4-addr:value = '…'], ipv6-addr, domain-name, ISSUBSET for ranges,
joined by OR). Indicators that are revoked, expired or whose patterns need more
than an address match are skipped and listed.`,
		Example: `  muster intel import c2.txt --feed c2
  muster intel import bundle.json --feed vendor-x --format stix`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			res, err := c.ImportIntel(cmd.Context(), feed, format, desc, data)
			if err != nil {
				return err
			}
			if perr := g.printer(cmd).print(res, func(t *table) {
				t.row("FEED", "FORMAT", "INDICATORS", "VERSION")
				t.row(res.Feed.Name, res.Feed.Format, strconv.FormatInt(res.Feed.Indicators, 10), strconv.FormatInt(res.Feed.Version, 10))
			}); perr != nil {
				return perr
			}
			if len(res.Skipped) > 0 && !g.jsonOutput() {
				fmt.Fprintf(cmd.ErrOrStderr(), "Skipped %d STIX indicators:\n", len(res.Skipped))
				for _, s := range res.Skipped {
					fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", s)
				}
			}
			return nil
		},
	}
	imp.Flags().StringVar(&feed, "feed", "", "feed name (required)")
	imp.Flags().StringVar(&format, "format", "auto", "list, stix or auto")
	imp.Flags().StringVar(&desc, "description", "", "what the feed is")
	markRequired(imp, "feed")

	list := &cobra.Command{
		Use:   "list [FEED]",
		Short: "List the feeds, or one feed's indicators",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				items, err := c.IntelFeedItems(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				out := g.printer(cmd).list(false, "TYPE", "VALUE", "NAME")
				for i := range items {
					out.add(&items[i], items[i].Type, items[i].Value, items[i].Name)
				}
				return out.close("")
			}
			feeds, err := c.IntelFeeds(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "FEED", "FORMAT", "INDICATORS", "VERSION", "IMPORTED", "BY")
			for i := range feeds {
				f := &feeds[i]
				out.add(f, f.Name, f.Format, strconv.FormatInt(f.Indicators, 10), strconv.FormatInt(f.Version, 10), timestamp(f.ImportedAt), f.ImportedBy)
			}
			return out.close("")
		},
	}
	del := &cobra.Command{
		Use:   "delete FEED",
		Short: "Delete a feed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			return c.DeleteIntelFeed(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(imp, list, del)
	return cmd
}
