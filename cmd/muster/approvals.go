package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newApprovalsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "approvals",
		Aliases: []string{"approval"},
		Short:   "List, approve and reject provisioning requests that wait for an operator",
	}
	cmd.AddCommand(newApprovalsListCmd(g), newApprovalsDecideCmd(g, true), newApprovalsDecideCmd(g, false))
	return cmd
}

func newApprovalsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List pending provisioning requests, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			qs, err := c.ListApprovals(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "DEVICE", "KIND", "TEMPLATE", "VERSION", "SINCE")
			for i := range qs {
				q := &qs[i]
				out.add(q, q.ID, q.DeviceID, q.Kind, q.Template, strconv.FormatInt(q.TemplateVersion, 10), timestamp(q.CreatedAt))
			}
			return out.close("")
		},
	}
}

func newApprovalsDecideCmd(g *globals, approve bool) *cobra.Command {
	var reason string
	use, short := "reject ID... --reason TEXT", "Reject provisioning requests"
	if approve {
		use, short = "approve ID...", "Approve provisioning requests; each device gets its certificate on its next retry"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			var ds []client.Decision
			if approve {
				ds, err = c.Approve(cmd.Context(), args, reason)
			} else {
				ds, err = c.Reject(cmd.Context(), args, reason)
			}
			if err != nil {
				return err
			}
			failed := 0
			out := g.printer(cmd).list(false, "ID", "STATUS", "ERROR")
			for i := range ds {
				d := &ds[i]
				if d.Error != "" {
					failed++
				}
				out.add(d, d.ID, d.Status, d.Error)
			}
			if err := out.close(""); err != nil {
				return err
			}
			if failed > 0 {
				return errors.New(fmt.Sprint(failed, " of ", len(ds), " requests were not decided; see the ERROR column"))
			}
			return nil
		},
	}
	if approve {
		cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the device history)")
	} else {
		cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the device history)")
		markRequired(cmd, "reason")
	}
	return cmd
}
