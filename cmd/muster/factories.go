package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newFactoriesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "factories",
		Aliases: []string{"factory"},
		Short:   "Register factories: their models, serial numbers and birth certificate CA",
		Long: `A factory is a manufacturing site: the models it makes, the pattern its serial
numbers follow, and the CA of its devices' birth certificates. Muster runs a
manufacturing CA for the factory, or, with --ca-cert, trusts the maker's own
CA once the maker proves it holds that CA's key (see "factories challenge").
Manufacturer tokens are scoped to one registered factory.`,
	}
	cmd.AddCommand(newFactoriesAddCmd(g), newFactoriesChallengeCmd(g), newFactoriesListCmd(g), newFactoriesGetCmd(g))
	return cmd
}

func newFactoriesAddCmd(g *globals) *cobra.Command {
	var req client.FactoryRequest
	var caCert, verification string
	cmd := &cobra.Command{
		Use:   "add NAME --models M1,M2 --serial-pattern REGEX",
		Short: "Register a factory with a Muster manufacturing CA, or the maker's own CA",
		Example: `  muster factories add acme --models sensor-x,sensor-y --serial-pattern 'SN-[0-9]{6}'
  muster factories add maker --models m1 --serial-pattern 'MK-[0-9]+' \
      --ca-cert maker-ca.pem --verification-cert verif.pem --nonce 3f9a...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			for _, f := range []struct {
				flag, file string
				dst        *string
			}{{"ca-cert", caCert, &req.CACert}, {"verification-cert", verification, &req.VerificationCert}} {
				if f.file == "" {
					continue
				}
				b, err := readInput(cmd, f.file)
				if err != nil {
					return fmt.Errorf("--%s: %w", f.flag, err)
				}
				*f.dst = string(b)
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			f, err := c.CreateFactory(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printFactory(g.printer(cmd), f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&req.Models, "models", nil, "models the factory makes, comma-separated (required)")
	fl.StringVar(&req.SerialPattern, "serial-pattern", "", "regular expression (Go RE2) every serial must match whole (required)")
	fl.StringVar(&caCert, "ca-cert", "", "PEM certificate of the maker's own IDevID CA, to trust instead of a Muster CA")
	fl.StringVar(&verification, "verification-cert", "", "PEM certificate signed by that CA whose common name is the nonce")
	fl.StringVar(&req.Nonce, "nonce", "", `the nonce from "muster factories challenge NAME"`)
	markRequired(cmd, "models", "serial-pattern")
	cmd.MarkFlagsRequiredTogether("ca-cert", "verification-cert", "nonce")
	_ = cmd.MarkFlagFilename("ca-cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("verification-cert", "pem", "crt")
	return cmd
}

func newFactoriesChallengeCmd(g *globals) *cobra.Command {
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "challenge NAME",
		Short: "Get a nonce for registering a maker's own CA for a new factory",
		Long: `Get a nonce that proves possession of a maker's CA key: the maker signs a
certificate whose common name is the nonce with that CA's key, and
"muster factories add NAME --ca-cert ... --verification-cert ... --nonce ..."
registers the CA. A nonce works once, before it expires.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ch, err := c.FactoryChallenge(cmd.Context(), args[0], expires)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), `Have the maker sign the nonce with its CA key, for example:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout verif.key -subj "/CN=%s" -out verif.csr
  openssl x509 -req -in verif.csr -CA maker-ca.pem -CAkey maker-ca.key -days 1 -out verif.pem
`, ch.Nonce)
			return g.printer(cmd).print(ch, func(t *table) {
				t.row("Factory", ch.Factory)
				t.row("Nonce", ch.Nonce)
				t.row("Expires", timestamp(ch.ExpiresAt))
			})
		},
	}
	cmd.Flags().DurationVar(&expires, "expires", 0, "how long the nonce is good (default 1h)")
	return cmd
}

func newFactoriesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List factories (a manufacturer token sees its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			fs, err := c.ListFactories(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "NAME", "MODELS", "SERIAL PATTERN", "CA", "CREATED")
			for i := range fs {
				f := &fs[i]
				out.add(f, f.Name, strings.Join(f.Models, ","), f.SerialPattern, f.CAMode, timestamp(f.CreatedAt))
			}
			return out.close("")
		},
	}
}

func newFactoriesGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a factory and its CAs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			f, err := c.GetFactory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printFactory(g.printer(cmd), f)
		},
	}
}

func printFactory(p printer, f *client.Factory) error {
	return p.print(f, func(t *table) {
		t.row("Name", f.Name)
		t.row("Models", strings.Join(f.Models, ", "))
		t.row("Serial pattern", f.SerialPattern)
		t.row("CA", f.CAMode)
		for _, ca := range f.CAs {
			t.row("  "+ca.Status, ca.ID+" ("+ca.Purpose+", key id "+ca.SubjectKeyID+", until "+timestamp(ca.NotAfter)+")")
		}
		t.row("Created", timestamp(f.CreatedAt)+" by "+f.CreatedBy)
	})
}
