package main

import (
	"fmt"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newTokensCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Create, list and revoke API tokens (admin only)",
	}
	cmd.AddCommand(newTokensCreateCmd(g), newTokensListCmd(g), newTokensRevokeCmd(g))
	return cmd
}

func newTokensCreateCmd(g *globals) *cobra.Command {
	var req client.TokenRequest
	cmd := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create an API token; its secret is printed once",
		Example: `  muster tokens create --role operator --name ci --expires 720h
  muster tokens create --role manufacturer --factory acme-sz --name line-3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Name == "" {
				// The server requires a name; the role is a fair one for
				// a quick token, and --name says more.
				req.Name = req.Role
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			created, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			// On stderr, so that capturing stdout captures the secret alone
			// with the token, and -o json stays valid JSON.
			fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown only this once: store it now. Muster keeps only its hash.")
			return g.printer(cmd).print(created, func(t *table) {
				tok := created.Token
				t.row("ID", tok.ID)
				t.row("Name", tok.Name)
				t.row("Role", tok.Role)
				t.row("Factory", tok.Factory)
				t.row("Expires", expiry(tok.ExpiresAt))
				t.row("Secret", created.Secret)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Role, "role", "", "admin, operator, manufacturer, installer or auditor (required)")
	f.StringVar(&req.Name, "name", "", "who or what uses the token (default: the role)")
	f.StringVar(&req.Factory, "factory", "", "the factory a manufacturer token is limited to")
	f.DurationVar(&req.ExpiresIn, "expires", 0, "lifetime, e.g. 720h (default: does not expire)")
	markRequired(cmd, "role")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(client.Roles(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newTokensListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			tokens, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "NAME", "ROLE", "FACTORY", "CREATED", "EXPIRES", "REVOKED")
			for i := range tokens {
				t := &tokens[i]
				out.add(t, t.ID, t.Name, t.Role, t.Factory, timestamp(t.CreatedAt), expiry(t.ExpiresAt), optionalTime(t.RevokedAt))
			}
			return out.close("")
		},
	}
}

func newTokensRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			result := struct {
				ID      string `json:"id"`
				Revoked bool   `json:"revoked"`
			}{args[0], true}
			return g.printer(cmd).print(result, func(t *table) {
				fmt.Fprintf(t.tw, "Token %s revoked.\n", args[0])
			})
		},
	}
}

func expiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return timestamp(*t)
}

func optionalTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return timestamp(*t)
}
