package main

import (
	"github.com/spf13/cobra"
)

func newAuditLogCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit-log",
		Short: "Read and verify the fleet audit log",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "Show the fleet audit log (token changes and other fleet-wide actions)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.newClient(cmd)
				if err != nil {
					return err
				}
				events, err := c.AuditLog(cmd.Context())
				if err != nil {
					return err
				}
				return g.printEvents(cmd, events)
			},
		},
		&cobra.Command{
			Use:   "verify",
			Short: "Verify the audit log's hash chain (exit status 1 when broken)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.newClient(cmd)
				if err != nil {
					return err
				}
				v, err := c.VerifyAuditLog(cmd.Context())
				if err != nil {
					return err
				}
				return g.printVerification(cmd, "audit log", v)
			},
		},
	)
	return cmd
}
