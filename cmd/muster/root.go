package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Output formats for -o/--output.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// globals holds the persistent flags every client command shares. It is
// built by newRootCmd and handed to each command constructor, so nothing
// lives in package variables.
type globals struct {
	server  string
	token   string
	dataDir string
	caFile  string
	output  string
	verbose bool

	root *cobra.Command
}

// newRootCmd builds the whole muster command tree.
func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "muster",
		Short: "Muster: IoT fleet provisioning and lifecycle server",
		Long: `Muster registers IoT devices from the factory line, provisions them and keeps
their lifecycle record. "muster serve" runs the server; the other commands
talk to its admin API.

Connection settings come from flags, then environment variables, then the
server's data directory (when run on the server host):
  --server   MUSTER_SERVER    default: https:// + the address in <data-dir>/api.addr,
                              else https://127.0.0.1:8443
  --token    MUSTER_TOKEN     default: <data-dir>/admin.token
  --ca-file  MUSTER_CA_FILE   default: <data-dir>/ca.pem, else the system roots
  --data-dir MUSTER_DATA_DIR  default: ./muster-data`,
		// run prints errors itself, with hints, and points at --help for
		// command-line mistakes instead of dumping the usage text.
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Marks that the command line parsed: failures from here on
			// are not usage errors (see run).
			cmd.SilenceUsage = true
			return g.checkOutput()
		},
	}
	g.root = root
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "admin API URL, e.g. https://muster.example:8443 (env MUSTER_SERVER)")
	pf.StringVar(&g.token, "token", "", "API token secret (env MUSTER_TOKEN)")
	pf.StringVar(&g.dataDir, "data-dir", "./muster-data", "the server's data directory, to discover api.addr, admin.token and ca.pem (env MUSTER_DATA_DIR)")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM file of the CA that signed the server's certificate (env MUSTER_CA_FILE)")
	pf.StringVarP(&g.output, "output", "o", formatTable, "output format: table or json")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log retries and other client events to stderr")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{formatTable + "\tfor people", formatJSON + "\tthe API's JSON, for scripts"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.MarkPersistentFlagFilename("ca-file", "pem", "crt")
	_ = root.MarkPersistentFlagDirname("data-dir")

	root.AddCommand(
		newServeCmd(),
		newMigrateCmd(),
		newWhoamiCmd(g),
		newDevicesCmd(g),
		newTokensCmd(g),
		newAuditLogCmd(g),
		newCertsCmd(g),
		newFactoriesCmd(g),
		newCACmd(g),
		newMfgCmd(g),
		newTemplatesCmd(g),
		newApprovalsCmd(g),
		newClaimsCmd(g),
		newDeviceCmd(g),
		newSimCmd(g),
	)
	root.AddCommand(featureCommands(g)...)
	return root
}

// setting returns a persistent flag's value: the flag when given, else the
// environment variable when set, else the flag's default.
func (g *globals) setting(flag, env string) string {
	f := g.root.PersistentFlags().Lookup(flag)
	if f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return f.Value.String()
}

func (g *globals) checkOutput() error {
	switch g.output {
	case formatTable, formatJSON:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o table or -o json", g.output)
}

// jsonOutput reports whether the user asked for the API's JSON.
func (g *globals) jsonOutput() bool { return g.output == formatJSON }
