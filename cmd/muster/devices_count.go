package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDevicesCountCmd(g *globals) *cobra.Command {
	var filters deviceFilterFlags
	cmd := &cobra.Command{
		Use:   "count",
		Short: "Count devices, filtered, without listing them",
		Long: `Count the devices that match the filters (the flags of "devices list"). The
server counts in its database, so this is quick however many devices match;
a manufacturer token counts its own factory's devices only.`,
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
			n, err := c.CountDevices(cmd.Context(), filter)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(struct {
				Count int64 `json:"count"`
			}{n}, func(t *table) {
				t.row(plural(n, "device"))
			})
		},
	}
	filters.bind(cmd)
	return cmd
}

// plural is n and noun, in the plural unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
