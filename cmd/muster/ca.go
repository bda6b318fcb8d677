package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/server"
	"github.com/spf13/cobra"
)

func newCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create, list, export and rotate Muster's certificate authorities",
		Long: `Muster's CA hierarchy: a root CA; an operational CA for device operational
certificates; a server CA for Muster's own TLS endpoints; a manufacturing CA per
factory for birth certificates, or the maker's own CA as an external trust
anchor. Certificates are kept in the database, keys in <data-dir>/keys
(encrypted) or on a PKCS#11 token. See docs/ca-rotation.md.`,
	}
	cmd.AddCommand(newCAInitCmd(), newCAListCmd(g), newCAExportCmd(g), newCARotateCmd(g))
	return cmd
}

// newCAInitCmd runs on the server host, like migrate: it needs the
// database and the CA keys, not the API.
func newCAInitCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the CA hierarchy (or check that it loads) without starting the server",
		Long: `Create the root, operational and server CAs exactly as the first start of
"muster serve" does, or, when they exist, load every CA key to prove it is
readable. Writes <data-dir>/ca.pem (the root certificate). Run it on the
server host with the same --data-dir, --database-url and key settings as serve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			cas, err := server.InitCA(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			// The server's records and the SDK's share their JSON.
			raw, err := json.Marshal(cas)
			if err != nil {
				return err
			}
			var out []client.CA
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			return printCAs(printer{w: cmd.OutOrStdout(), json: outputJSON(cmd)}, out)
		},
	}
	f.bind(cmd.Flags(), false)
	f.bindCA(cmd.Flags())
	return cmd
}

// outputJSON reads the root's -o flag for commands built without globals.
func outputJSON(cmd *cobra.Command) bool {
	return cmd.Flag("output").Value.String() == formatJSON
}

func newCAListCmd(g *globals) *cobra.Command {
	var filter client.CAFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the CAs Muster signs with and trusts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			cas, err := c.ListCAs(cmd.Context(), filter)
			if err != nil {
				return err
			}
			return printCAs(g.printer(cmd), cas)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&filter.Purpose, "purpose", "", "root, operational, server, manufacturing or external")
	fl.StringVar(&filter.Factory, "factory", "", "the factory of manufacturing and external CAs")
	fl.StringVar(&filter.Status, "status", "", "active, retiring or retired")
	return cmd
}

func printCAs(p printer, cas []client.CA) error {
	out := p.list(false, "ID", "PURPOSE", "FACTORY", "STATUS", "NOT AFTER", "RETIRE AT")
	for i := range cas {
		c := &cas[i]
		out.add(c, c.ID, c.Purpose, c.Factory, c.Status, timestamp(c.NotAfter), optionalTime(c.RetireAt))
	}
	return out.close("")
}

func newCAExportCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "export --out DIR",
		Short: "Write the certificate chains devices and openssl need",
		Long: `Write root.pem, server-chain.pem, operational-chain.pem, one
manufacturing-<factory>-chain.pem per factory with a Muster CA and one
external-<factory>.pem per maker CA into DIR, with a README.txt saying what
each is for. Check a birth certificate with:
  openssl verify -CAfile DIR/root.pem -untrusted DIR/manufacturing-<factory>-chain.pem SERIAL.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			chains, err := c.CAChains(cmd.Context())
			if err != nil {
				return err
			}
			if err := writeChains(dir, chains); err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "FILE", "PURPOSE", "FACTORY", "CERTIFICATES")
			for i := range chains {
				ch := &chains[i]
				out.add(ch, dir+string(os.PathSeparator)+ch.FileName, ch.Purpose, ch.Factory, strconv.Itoa(strings.Count(ch.PEM, "BEGIN CERTIFICATE")))
			}
			return out.close("")
		},
	}
	cmd.Flags().StringVar(&dir, "out", "", "directory to write the chains into (required)")
	markRequired(cmd, "out")
	_ = cmd.MarkFlagDirname("out")
	return cmd
}

// writeChains writes the chains and a README.txt into dir. Names come from
// the server, so every file is written through an os.Root: nothing lands
// outside dir.
func writeChains(dir string, chains []client.Chain) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var readme strings.Builder
	readme.WriteString("Certificate chains exported by `muster ca export` on " + time.Now().UTC().Format(time.RFC3339) + ".\n\n")
	for _, c := range chains {
		if err := root.WriteFile(c.FileName, []byte(c.PEM), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", c.FileName, err)
		}
		fmt.Fprintf(&readme, "%-40s %s\n", c.FileName, chainPurpose(c))
	}
	readme.WriteString(`
Check a birth certificate (SERIAL.crt, as "muster mfg batch submit --out" writes it):
  openssl verify -CAfile root.pem -untrusted manufacturing-<factory>-chain.pem SERIAL.crt
During a CA rotation's overlap a chain holds both the new and the old CA.
`)
	return root.WriteFile("README.txt", []byte(readme.String()), 0o644)
}

func chainPurpose(c client.Chain) string {
	switch c.Purpose {
	case "root":
		return "the root CA: the trust anchor of everything below"
	case "server":
		return "server CA(s) + root: verify Muster's own TLS endpoints"
	case "operational":
		return "operational CA(s) + root: verify devices' operational certificates"
	case "manufacturing":
		return "manufacturing CA(s) of factory " + c.Factory + " + root: verify its birth certificates"
	case "external":
		return "the maker's own CA of factory " + c.Factory + ": verify its birth certificates"
	}
	return c.Purpose
}

func newCARotateCmd(g *globals) *cobra.Command {
	var req client.RotateRequest
	cmd := &cobra.Command{
		Use:   "rotate --purpose operational|server|manufacturing|regional [--factory F|--region R] --overlap 720h",
		Short: "Replace a CA; the old one stays trusted for the overlap",
		Long: `Replace the operational, server, a factory's manufacturing or a region's CA with
a new key and certificate (same subject, signed by the root). The new CA signs from now
on; the old one is still trusted for --overlap, so certificates it issued keep
working while devices move over, then it retires. See docs/ca-rotation.md.`,
		Example: `  muster ca rotate --purpose manufacturing --factory acme --overlap 720h
  muster ca rotate --purpose operational --overlap 2160h
  muster ca rotate --purpose regional --region eu-west --overlap 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ca, err := c.RotateCA(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), `Export the chains again ("muster ca export") and give them to relying parties before the overlap ends.`)
			return printCAs(g.printer(cmd), []client.CA{*ca})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Purpose, "purpose", "", "operational, server, manufacturing or regional (required)")
	fl.StringVar(&req.Factory, "factory", "", "the factory, for a manufacturing CA")
	fl.StringVar(&req.Region, "region", "", "the region, for a regional CA")
	fl.DurationVar(&req.Overlap, "overlap", 720*time.Hour, "how long the old CA stays trusted")
	markRequired(cmd, "purpose")
	_ = cmd.RegisterFlagCompletionFunc("purpose", cobra.FixedCompletions([]string{"operational", "server", "manufacturing", "regional"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
