package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/progress"
	"github.com/spf13/cobra"
)

func newMfgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mfg",
		Short: "Manufacturing: submit batches of devices with their birth identities",
	}
	batch := &cobra.Command{Use: "batch", Short: "Submit manufacturing batches and read their records"}
	batch.AddCommand(newBatchSubmitCmd(g), newBatchGetCmd(g))
	manifest := &cobra.Command{Use: "manifest", Short: "Make manifests for trying Muster out"}
	manifest.AddCommand(newManifestGenerateCmd(g))
	cmd.AddCommand(batch, manifest)
	return cmd
}

func newBatchSubmitCmd(g *globals) *cobra.Command {
	var factory, dir, keyMode, format, batchID string
	cmd := &cobra.Command{
		Use:   "submit --factory F MANIFEST --out DIR",
		Short: "Register a batch from a CSV or JSON lines manifest; write every birth certificate into DIR",
		Long: `Stream a manifest (CSV or JSON lines, "-" for stdin) to the server, which
checks every row against the factory, gives every new unit its birth
certificate and answers row by row. A progress bar on stderr shows rows/s and
errors. DIR receives <serial>.crt for every unit (with its CA), <serial>.key
for every key Muster minted (key mode mint; shown this once only),
report.csv with every row's outcome and summary.json.

Rows the server refuses are listed in report.csv with their reason and do not
stop the batch; the exit code is non-zero only when the batch could not be
completed. Submitting the same manifest again is safe: registered serials come
back as "exists" with the certificate they have.`,
		Example: `  muster mfg batch submit --factory acme manifest.csv --out ./batch-47
  muster mfg batch submit --factory acme --key-mode mint units.jsonl --out ./test-line`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			br, err := openManifestAs(cmd, args[0], format)
			if err != nil {
				return err
			}
			defer br.Close()
			opts := client.BatchOptions{KeyMode: client.KeyMode(keyMode), Batch: batchID, Format: br.format}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out, err := mfg.NewOutWriter(dir)
			if err != nil {
				return err
			}
			defer out.Close()
			bar := progress.New(cmd.ErrOrStderr(), countRows(args[0], opts.Format), progress.Options{})
			report, err := c.SubmitBatch(cmd.Context(), factory, br, opts, func(r client.BatchResult) error {
				bar.Add(r.Status != client.StatusError)
				return out.Write(r)
			})
			bar.Finish()
			if err != nil {
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
			s := report.Summary
			if s.Errors > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d rows were refused; each reason is in %s\n", s.Errors, filepath.Join(dir, "report.csv"))
			}
			return g.printer(cmd).print(report, func(t *table) {
				t.row("Batch", report.Batch)
				t.row("Rows", strconv.Itoa(s.Rows))
				t.row("Registered", strconv.Itoa(s.OK))
				t.row("Existing", strconv.Itoa(s.Existing))
				t.row("Refused", strconv.Itoa(s.Errors)+codes(s.ErrorsByCode))
				t.row("Server time", s.Elapsed.Round(time.Millisecond).String()+fmt.Sprintf(" (%.0f rows/s)", s.RowsPerSec))
				t.row("Output", dir)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&factory, "factory", "", "the factory the units come from (required)")
	fl.StringVar(&dir, "out", "", "directory for certificates, minted keys and the report (required)")
	fl.StringVar(&keyMode, "key-mode", "", "csr (rows carry device CSRs), mint (Muster makes keys) or register (rows carry the maker's certificates); default csr, register for factories with their own CA")
	fl.StringVar(&format, "format", "", "csv or jsonl (default: from the file name or content)")
	fl.StringVar(&batchID, "batch", "", "batch id for the units (default: a new id)")
	markRequired(cmd, "factory", "out")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("key-mode", cobra.FixedCompletions([]string{"csr", "mint", "register"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// openManifest opens a manifest file, or stdin for "-", and returns its name
// for format detection.
func openManifest(cmd *cobra.Command, arg string) (io.ReadCloser, string, error) {
	if arg == "-" {
		return io.NopCloser(cmd.InOrStdin()), "", nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, "", err
	}
	return f, arg, nil
}

// manifestInput is a manifest opened for streaming, buffered, with its
// format: the --format flag's, or else what its name and first bytes say.
type manifestInput struct {
	*bufio.Reader
	io.Closer
	format mfg.Format
}

func openManifestAs(cmd *cobra.Command, arg, format string) (*manifestInput, error) {
	in, name, err := openManifest(cmd, arg)
	if err != nil {
		return nil, err
	}
	m := &manifestInput{Reader: bufio.NewReaderSize(in, 64<<10), Closer: in}
	if format != "" {
		m.format, err = mfg.ParseFormat(format)
	} else {
		head, _ := m.Peek(512)
		m.format, err = mfg.DetectFormat(name, head)
	}
	if err != nil {
		in.Close()
		return nil, err
	}
	return m, nil
}

// countRows counts a manifest file's rows for the progress bar's total and
// ETA; 0 (unknown) for stdin or a file that cannot be read.
func countRows(path string, format mfg.Format) int64 {
	if path == "-" {
		return 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	mr, err := mfg.NewManifestReader(bufio.NewReaderSize(f, 1<<20), format)
	if err != nil {
		return 0
	}
	var n int64
	for {
		if _, err := mr.Next(); err != nil {
			return n
		}
		n++
	}
}

// codes lists refusals by code: " (csr_invalid 2, scope 1)".
func codes(byCode map[string]int) string {
	if len(byCode) == 0 {
		return ""
	}
	parts := make([]string, 0, len(byCode))
	for code, n := range byCode {
		parts = append(parts, fmt.Sprintf("%s %d", code, n))
	}
	slices.Sort(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}

func newBatchGetCmd(g *globals) *cobra.Command {
	var factory string
	cmd := &cobra.Command{
		Use:   "get --factory F BATCH",
		Short: "Show a batch and the totals of its latest submission",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			b, err := c.GetBatch(cmd.Context(), factory, args[0])
			if err != nil {
				return err
			}
			return g.printer(cmd).print(b, func(t *table) {
				t.row("Batch", b.ID)
				t.row("Factory", b.Factory)
				t.row("Key mode", b.KeyMode)
				t.row("Status", b.Status)
				t.row("Rows", fmt.Sprintf("%d (%d registered, %d existing, %d refused)", b.Rows, b.OK, b.Existing, b.Errors))
				t.row("Submitted", timestamp(b.CreatedAt)+" by "+b.CreatedBy)
				t.row("Finished", optionalTime(b.FinishedAt))
			})
		},
	}
	cmd.Flags().StringVar(&factory, "factory", "", "the batch's factory (required)")
	markRequired(cmd, "factory")
	return cmd
}

func newManifestGenerateCmd(g *globals) *cobra.Command {
	var o mfg.GenerateOptions
	var factory, format, file string
	cmd := &cobra.Command{
		Use:   "generate --model M --count N [--with-csr --csr-dir DIR]",
		Short: "Write a manifest of N units with consecutive serials, for trying Muster out",
		Long: `Write a manifest of --count units of --model with serials --serial-prefix
followed by a zero-padded number (SN-000001, ...). With --with-csr each unit is
simulated as a device that made its own key: the row carries its CSR and the
key goes to --csr-dir/<serial>.key. With --factory the serials and the model
are checked against that factory first.`,
		Example: `  muster mfg manifest generate --factory acme --model sensor-x --count 1000 --with-csr --csr-dir device-keys > csr.csv
  muster mfg manifest generate --model sensor-x --count 1000 --start 1001 --out mint.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Format, err = generateFormat(format, file); err != nil {
				return err
			}
			if o.KeyDir != "" && !o.WithCSR {
				return errors.New("--csr-dir holds the simulated devices' keys: give --with-csr too")
			}
			if factory != "" {
				if err := checkAgainstFactory(cmd, g, factory, o); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			if file != "" && file != "-" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriter(w)
			if err := mfg.GenerateManifest(bw, o); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			msg := fmt.Sprintf("wrote %d units, %s to %s", o.Count, o.Serial(0), o.Serial(o.Count-1))
			if o.KeyDir != "" {
				msg += "; their keys are in " + o.KeyDir
			}
			fmt.Fprintln(cmd.ErrOrStderr(), msg)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&factory, "factory", "", "check the model and serials against this factory")
	fl.StringVar(&o.Model, "model", "", "model of every unit (required)")
	fl.IntVar(&o.Count, "count", 0, "number of units (required)")
	fl.StringVar(&o.SerialPrefix, "serial-prefix", "SN-", "text before each serial's number")
	fl.IntVar(&o.Start, "start", 1, "number of the first serial")
	fl.IntVar(&o.Digits, "digits", 6, "digits of the serial's number, zero-padded")
	fl.StringVar(&o.HardwareRevision, "hw-rev", "", "hardware revision of every unit")
	fl.BoolVar(&o.WithCSR, "with-csr", false, "simulate devices with their own keys: put a CSR in every row")
	fl.StringVar(&o.KeyDir, "csr-dir", "", "directory for the simulated devices' private keys (with --with-csr)")
	fl.StringVar(&format, "format", "", "csv (default) or jsonl; default from the --out file name")
	fl.StringVar(&file, "out", "", "manifest file to write (default stdout)")
	markRequired(cmd, "model", "count")
	_ = cmd.MarkFlagDirname("csr-dir")
	return cmd
}

// generateFormat is the --format given, else the --out file's extension,
// else CSV.
func generateFormat(format, file string) (mfg.Format, error) {
	if format != "" {
		return mfg.ParseFormat(format)
	}
	if strings.HasSuffix(file, ".jsonl") || strings.HasSuffix(file, ".ndjson") {
		return mfg.FormatJSONL, nil
	}
	return mfg.FormatCSV, nil
}

// checkAgainstFactory fails before anything is written when the factory
// would refuse the units.
func checkAgainstFactory(cmd *cobra.Command, g *globals, name string, o mfg.GenerateOptions) error {
	c, err := g.newClient(cmd)
	if err != nil {
		return err
	}
	sf, err := c.GetFactory(cmd.Context(), name)
	if err != nil {
		return err
	}
	f, err := mfg.NewFactory(mfg.Factory{Name: sf.Name, Models: sf.Models, SerialPattern: sf.SerialPattern, CAMode: sf.CAMode})
	if err != nil {
		return err
	}
	for i := range o.Count {
		if err := f.CheckRow(o.Model, o.Serial(i)); err != nil {
			return fmt.Errorf("factory %s would refuse unit %d: %w; adjust --model, --serial-prefix or --digits", name, i+1, err)
		}
	}
	return nil
}
