package main

import (
	"github.com/spf13/cobra"
)

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the token the CLI authenticates with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			p, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			return g.printer(cmd).print(p, func(t *table) {
				t.row("ID", "NAME", "ROLE", "FACTORY", "SERVER")
				t.row(p.ID, p.Name, p.Role, p.Factory, c.BaseURL())
			})
		},
	}
}
