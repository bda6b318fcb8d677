package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/progress"
	"github.com/spf13/cobra"
)

func newJobsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Bulk jobs: apply one operation to every device of a manifest",
		Long: `A bulk job applies one operation to every row of a CSV or JSON lines
manifest: register (pre-registration), update (attributes, groups, tags,
owner, site), state, revoke (every certificate of each device) or
reprovision. The server stores the manifest and applies it chunk by chunk;
a job survives restarts and moves to another node if its node dies, with
every row applied exactly once. A bad row never stops the others: each row
gets a result (ok, unchanged or error with its reason).`,
	}
	cmd.AddCommand(newJobsStartCmd(g), newJobsStatusCmd(g), newJobsListCmd(g), newJobsCancelCmd(g), newJobsResultsCmd(g), newJobsDeleteCmd(g))
	return cmd
}

func newJobsStartCmd(g *globals) *cobra.Command {
	var opts client.JobOptions
	var format string
	var attrs []string
	var detach bool
	cmd := &cobra.Command{
		Use:   "start --template T MANIFEST",
		Short: "Upload a manifest and run a job on it, with a progress bar",
		Long: `Stream a manifest (CSV or JSON lines, "-" for stdin) to the server, which
stores it and queues the job, then follow the job with a progress bar on
stderr (rows/s, ETA, errors) until it finishes. Interrupting the command does
not stop the job: see it with "muster jobs status ID", stop it with
"muster jobs cancel ID".

Rows are JSON objects (or CSV columns in snake_case) with these fields:
id, or serial with model and factory, to name the device; and owner, site,
groups, tags, attributes (CSV: ';'-separated lists, attr.<key> columns),
hardwareRevision, batch, state and reason as the operation uses them. The
flags give defaults for every row. Starting the same manifest again is safe:
rows already applied come out "unchanged".`,
		Example: `  muster jobs start --template sensor-v1 --factory acme --model S1 devices.csv
  muster jobs start --op update --attr firmware-channel=beta --group beta rows.jsonl
  muster jobs start --op state --state suspended --reason "stolen" stolen.csv
  muster jobs start --op revoke --revocation-reason keyCompromise leaked.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			br, err := openManifestAs(cmd, args[0], format)
			if err != nil {
				return err
			}
			defer br.Close()
			opts.Format = br.format
			if opts.Attributes, err = parsePairs("attr", attrs); err != nil {
				return err
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			// The upload has its own bar, in bytes: a large manifest takes
			// a while to send before the job's rows can be counted.
			up := progress.New(cmd.ErrOrStderr(), fileSize(args[0]), progress.Options{Unit: "bytes"})
			job, err := c.StartJob(cmd.Context(), &countingReader{r: br, bar: up}, opts)
			up.Finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Job %s queued: %d rows.\n", job.ID, job.Rows)
			if !detach {
				if job, err = followJob(cmd, c, job); err != nil {
					return err
				}
			}
			if job.Errors > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d rows failed; their reasons: muster jobs results %s --errors\n", job.Errors, job.ID)
			}
			return printJob(g, cmd, job)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Op, "op", client.JobRegister, "register, update, state, revoke or reprovision")
	f.StringVar(&opts.Template, "template", "", "provisioning template the devices provision with (required for register; reprovision switches devices to it)")
	f.StringVar(&opts.Factory, "factory", "", "factory of rows that name none")
	f.StringVar(&opts.Model, "model", "", "model of rows that name none")
	f.StringVar(&opts.Owner, "owner", "", "owner of rows that name none")
	f.StringVar(&opts.Site, "site", "", "site of rows that name none")
	f.StringVar(&opts.Batch, "batch", "", "batch of registered rows that name none")
	f.StringArrayVar(&opts.Groups, "group", nil, "group every device gets (repeatable)")
	f.StringArrayVar(&opts.Tags, "tag", nil, "tag every device gets (repeatable)")
	f.StringArrayVar(&attrs, "attr", nil, "attribute key=value every device gets (repeatable; update: an empty value removes it)")
	f.StringVar(&opts.State, "state", "", "target state of a state job, for rows that name none")
	f.StringVar(&opts.Reason, "reason", "", "reason recorded with state changes")
	f.StringVar(&opts.RevocationReason, "revocation-reason", "", "RFC 5280 reason of a revoke job, e.g. keyCompromise (default unspecified)")
	f.StringVar(&format, "format", "", "csv or jsonl (default: from the file name or content)")
	f.BoolVar(&detach, "detach", false, "return once the job is queued instead of following it")
	_ = cmd.RegisterFlagCompletionFunc("op", cobra.FixedCompletions([]string{client.JobRegister, client.JobUpdate, client.JobState, client.JobRevoke, client.JobReprovision}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("state", completeStates)
	return cmd
}

// jobPollEvery is how often a followed job's progress is read.
const jobPollEvery = 250 * time.Millisecond

// followJob shows a job's progress until it finishes.
func followJob(cmd *cobra.Command, c *client.Client, job *client.Job) (*client.Job, error) {
	bar := progress.New(cmd.ErrOrStderr(), job.Rows, progress.Options{})
	defer bar.Finish()
	t := time.NewTicker(jobPollEvery)
	defer t.Stop()
	for {
		bar.Set(job.Done(), job.Errors)
		if job.Finished() {
			return job, nil
		}
		select {
		case <-cmd.Context().Done():
			return nil, fmt.Errorf("stopped following job %s, which goes on; see it with: muster jobs status %s", job.ID, job.ID)
		case <-t.C:
		}
		next, err := c.GetJob(cmd.Context(), job.ID)
		if err != nil {
			return nil, err
		}
		job = next
	}
}

func printJob(g *globals, cmd *cobra.Command, j *client.Job) error {
	return g.printer(cmd).print(j, func(t *table) {
		t.row("Job", j.ID)
		t.row("Operation", j.Op)
		t.row("Status", j.Status+cancelNote(j))
		t.row("Rows", fmt.Sprintf("%d of %d applied (%d ok, %d unchanged, %d errors)", j.Done(), j.Rows, j.OK, j.Unchanged, j.Errors))
		t.row("Node", j.Node)
		t.row("Manifest SHA-256", j.ManifestSHA256)
		t.row("Submitted", timestamp(j.CreatedAt)+" by "+j.CreatedBy)
		t.row("Finished", optionalTime(j.FinishedAt))
	})
}

func cancelNote(j *client.Job) string {
	if j.CancelRequested && !j.Finished() {
		return " (cancel requested)"
	}
	return ""
}

func newJobsStatusCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a job's status and progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if follow {
				if j, err = followJob(cmd, c, j); err != nil {
					return err
				}
			}
			return printJob(g, cmd, j)
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "show a progress bar until the job finishes")
	return cmd
}

func newJobsListCmd(g *globals) *cobra.Command {
	var status string
	var opts client.ListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			page, err := c.ListJobs(cmd.Context(), status, opts)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(true, "ID", "OP", "STATUS", "ROWS", "DONE", "ERRORS", "CREATED")
			for i := range page.Items {
				j := &page.Items[i]
				out.add(j, j.ID, j.Op, j.Status, strconv.FormatInt(j.Rows, 10), strconv.FormatInt(j.Done(), 10), strconv.FormatInt(j.Errors, 10), timestamp(j.CreatedAt))
			}
			return out.close(page.NextCursor)
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only jobs with this status: uploading, queued, running, done or cancelled")
	f.IntVar(&opts.Limit, "limit", 0, "page size (default 100)")
	f.StringVar(&opts.Cursor, "cursor", "", "next page after a previous list")
	return cmd
}

func newJobsCancelCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job: at once if it has not started, before its next chunk otherwise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			j, err := c.CancelJob(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printJob(g, cmd, j)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the fleet audit log")
	return cmd
}

func newJobsResultsCmd(g *globals) *cobra.Command {
	var errorsOnly bool
	var format string
	cmd := &cobra.Command{
		Use:   "results ID",
		Short: "Write every applied row's result (ok, unchanged or error with its reason) as JSON lines or CSV",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			var write func(client.JobResult) error
			switch format {
			case "jsonl":
				enc := json.NewEncoder(w)
				write = func(r client.JobResult) error { return enc.Encode(r) }
			case "csv":
				cw := csv.NewWriter(w)
				if err := cw.Write([]string{"row", "line", "serial", "device_id", "status", "code", "message"}); err != nil {
					return err
				}
				write = func(r client.JobResult) error {
					err := cw.Write([]string{strconv.FormatInt(r.Row, 10), strconv.Itoa(r.Line), r.Serial, r.DeviceID, r.Status, r.Code, r.Message})
					cw.Flush()
					return err
				}
			default:
				return fmt.Errorf("--format %q: want jsonl or csv", format)
			}
			if err := c.JobResults(cmd.Context(), args[0], errorsOnly, write); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&errorsOnly, "errors", false, "only the rows that failed")
	f.StringVar(&format, "format", "jsonl", "jsonl or csv")
	return cmd
}

// countingReader reports the bytes read through it to a progress bar.
type countingReader struct {
	r   io.Reader
	bar *progress.Bar
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.bar.Set(c.n, 0)
	return n, err
}

// fileSize is the size of the manifest file for the upload bar; 0
// (unknown) for stdin.
func fileSize(path string) int64 {
	if path == "-" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func newJobsDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "Job", "Delete a finished job with its stored manifest and results (the rows it applied stay)",
		func(ctx context.Context, c *client.Client, id string) error { return c.DeleteJob(ctx, id) })
}
