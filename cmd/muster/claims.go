package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newClaimsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "claims",
		Aliases: []string{"claim"},
		Short:   "Create claims: short-lived, single-use credentials for devices without a birth certificate",
	}
	cmd.AddCommand(newClaimsCreateCmd(g))
	return cmd
}

func newClaimsCreateCmd(g *globals) *cobra.Command {
	var req client.ClaimRequest
	cmd := &cobra.Command{
		Use:     "create --factory F --model M --serial S",
		Short:   "Create a claim; its secret is printed once",
		Example: "  muster claims create --factory acme --model sensor-x --serial FIELD-7 --template installer --expires 10m",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			created, err := c.CreateClaim(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown only this once; the device sends it to /v1/provision/claim before it expires.")
			return g.printer(cmd).print(created, func(t *table) {
				t.row("ID", created.Claim.ID)
				t.row("Device", created.Claim.Factory+"/"+created.Claim.Model+"/"+created.Claim.Serial)
				t.row("Template", created.Claim.Template)
				t.row("Expires", timestamp(created.Claim.ExpiresAt))
				t.row("Secret", created.Secret)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Factory, "factory", "", "the device's factory (required)")
	f.StringVar(&req.Model, "model", "", "the device's model (required)")
	f.StringVar(&req.Serial, "serial", "", "the device's serial number (required)")
	f.StringVar(&req.Template, "template", "", "the template the device must use (default: its own or \"default\")")
	f.DurationVar(&req.ExpiresIn, "expires", 0, "lifetime, 1m to 24h (default 5m)")
	markRequired(cmd, "factory")
	markRequired(cmd, "model")
	markRequired(cmd, "serial")
	return cmd
}
