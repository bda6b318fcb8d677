package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/progress"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/server"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Run the configuration audit and work with its findings",
		Long: `The configuration audit checks certificates, devices, templates, gateway
metering and histories, and reports findings with a severity and a suggested
fix (docs/audit.md lists the checks). Servers can also run it on a schedule
(muster serve --audit-interval). A run updates the findings of earlier runs:
each finding has a stable key, and findings no longer reported are resolved.`,
	}
	cmd.AddCommand(newAuditRunCmd(g), newAuditFindingsCmd(g), newAuditSuppressCmd(g), newAuditRunsCmd(g), newAuditChecksCmd(g))
	return cmd
}

func newAuditRunCmd(g *globals) *cobra.Command {
	var (
		checks []string
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the audit now (all checks, or --checks) and print the run",
		Long: `Start the configuration audit on the server and wait for it, showing its
progress on stderr, then print the run. The server runs the audit in the
background: interrupting the wait leaves it running (muster audit runs shows
it), and --no-wait prints the run's id at once. A node runs one audit at a
time; while it runs one, starting another fails naming the run.`,
		Example: "  muster audit run\n  muster audit run --checks weak-key,cert-expiring\n  muster audit run --no-wait",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			run, err := c.StartAudit(cmd.Context(), nonEmpty(checks))
			if err != nil {
				return err
			}
			if noWait {
				return g.printer(cmd).print(run, func(t *table) { t.row("RUN", run.ID) })
			}
			if run, err = followAudit(cmd, c, run); err != nil {
				return err
			}
			if err := g.printer(cmd).print(run, func(t *table) { runTable(t, run) }); err != nil {
				return err
			}
			if run.Status == client.AuditFailed {
				return fmt.Errorf("audit run %s failed: %s", run.ID, run.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&checks, "checks", nil, "check ids to run, comma-separated (default all; muster audit checks lists them)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the run's id and return; the server runs the audit in the background")
	return cmd
}

// followAudit waits for a run to end, showing the checks done on stderr.
func followAudit(cmd *cobra.Command, c *client.Client, run *client.AuditRun) (*client.AuditRun, error) {
	bar := progress.New(cmd.ErrOrStderr(), int64(len(run.Checks)), progress.Options{Unit: "checks"})
	defer bar.Finish()
	done, err := c.WaitAudit(cmd.Context(), run.ID, func(r *client.AuditRun) {
		bar.Set(int64(r.Progress.ChecksDone), 0)
	})
	if err != nil {
		return nil, fmt.Errorf("%w; the run goes on in the background (muster audit runs)", err)
	}
	return done, nil
}

// runTable renders one run as label/value rows.
func runTable(t *table, r *client.AuditRun) {
	t.row("RUN", r.ID)
	t.row("STATUS", r.Status)
	t.row("KIND", r.Kind+" by "+r.Actor)
	t.row("STARTED", timestamp(r.StartedAt))
	if r.FinishedAt != nil {
		t.row("FINISHED", timestamp(*r.FinishedAt))
	}
	t.row("CHECKS", strings.Join(r.Checks, ","))
	t.row("FINDINGS", fmt.Sprintf("%d reported, %d new, %d resolved", r.Counts.Findings, r.Counts.New, r.Counts.Resolved))
	t.row("OPEN", fmt.Sprintf("%d (%s), %d suppressed", r.Counts.Open, severities(r.Counts.BySeverity), r.Counts.Suppressed))
	p := r.Progress
	t.row("EXAMINED", fmt.Sprintf("%d/%d checks, %d devices, %d certificates, %d meter rows, %d histories",
		p.ChecksDone, len(r.Checks), p.Devices, p.Certificates, p.MeterRows, p.Histories))
	if r.Error != "" {
		t.row("ERROR", r.Error)
	}
}

// severities renders counts by severity, most severe first.
func severities(m map[string]int) string {
	var parts []string
	for _, s := range []string{"critical", "high", "medium", "low"} {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", s, m[s]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func newAuditFindingsCmd(g *globals) *cobra.Command {
	var (
		filter client.FindingFilter
		opts   client.ListOptions
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "List audit findings, filtered",
		Long: `List findings in key order. Without --all one page is printed (100 findings
unless --limit says otherwise); --all follows every page. --state is open
(the default listing shows every state), suppressed or resolved.`,
		Example: "  muster audit findings --state open --severity high\n  muster audit findings --device dev_01j9... --check vulnerable-firmware",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(true, "KEY", "SEVERITY", "STATE", "SUBJECT", "LAST-SEEN", "MESSAGE")
			add := func(f *client.Finding) {
				out.add(f, f.Key, f.Severity, f.State, f.SubjectKind+" "+f.Subject, timestamp(f.LastSeen), f.Message)
			}
			return printListing(cmd, g, out, all, "findings", c.Findings(cmd.Context(), filter),
				func() (*client.Page[client.Finding], error) { return c.ListFindings(cmd.Context(), filter, opts) }, add)
		},
	}
	f := cmd.Flags()
	f.StringVar(&filter.Severity, "severity", "", "critical, high, medium or low")
	f.StringVar(&filter.Check, "check", "", "check id")
	f.StringVar(&filter.DeviceID, "device", "", "device id")
	f.StringVar(&filter.State, "state", "", "open, suppressed or resolved")
	bindPageFlags(cmd, &opts, &all, "findings")
	return cmd
}

func newAuditSuppressCmd(g *globals) *cobra.Command {
	var reason, expires string
	cmd := &cobra.Command{
		Use:   "suppress FINDING",
		Short: "Suppress a finding until a time, with a reason",
		Long: `Suppress an accepted finding: it is listed as suppressed, left out of the open
counts, and comes back as open when the suppression expires (at most 366 days
ahead). The suppression, its reason and who made it are recorded in the fleet
audit log (muster audit-log list).`,
		Example: "  muster audit suppress not-seen:dev_01j9... --reason \"in storage until March\" --expires 90d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			until, err := expiryTime(expires, time.Now())
			if err != nil {
				return err
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			f, err := c.SuppressFinding(cmd.Context(), args[0], reason, until)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(f, func(t *table) {
				t.row("FINDING", f.Key)
				t.row("STATE", f.State)
				if s := f.Suppression; s != nil {
					t.row("SUPPRESSED", "until "+timestamp(s.Until)+" by "+s.By)
					t.row("REASON", s.Reason)
				}
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the finding is acceptable (required)")
	cmd.Flags().StringVar(&expires, "expires", "", "when the suppression ends: a duration such as 30d or 720h, or an RFC 3339 time (required)")
	_ = cmd.MarkFlagRequired("reason")
	_ = cmd.MarkFlagRequired("expires")
	return cmd
}

// expiryTime reads --expires: an RFC 3339 time, or a duration from now.
func expiryTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := provision.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--expires %q: give a duration such as 30d or 720h, or an RFC 3339 time such as 2027-01-31T00:00:00Z", s)
	}
	return now.Add(time.Duration(d)), nil
}

func newAuditRunsCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List audit runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			runs, err := c.AuditRuns(cmd.Context(), limit)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "RUN", "KIND", "STATUS", "STARTED", "CHECKS", "FINDINGS", "NEW", "RESOLVED", "OPEN")
			for i := range runs {
				r := &runs[i]
				out.add(r, r.ID, r.Kind, r.Status, timestamp(r.StartedAt), fmt.Sprint(len(r.Checks)), fmt.Sprint(r.Counts.Findings),
					fmt.Sprint(r.Counts.New), fmt.Sprint(r.Counts.Resolved), fmt.Sprint(r.Counts.Open))
			}
			return out.close("")
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "how many runs, 1 to 1000 (default 20)")
	return cmd
}

func newAuditChecksCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checks",
		Short: "List the audit's checks and the server's thresholds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			cs, err := c.AuditChecks(cmd.Context())
			if err != nil {
				return err
			}
			return g.printer(cmd).print(cs, func(t *table) {
				t.row("CHECK", "SEVERITY", "TITLE")
				for _, ch := range cs.Checks {
					t.row(ch.ID, ch.Severity, ch.Title)
				}
				keys := make([]string, 0, len(cs.Params))
				for k := range cs.Params {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					t.row("PARAM", k, fmt.Sprint(cs.Params[k]))
				}
			})
		},
	}
}

// auditFlags are the configuration audit's settings of `muster serve`.
type auditFlags struct {
	interval, notSeen, certExpiry, caExpiry, maxCertAge string
}

func (f *auditFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.interval, "audit-interval", "", "run the configuration audit every interval, e.g. 24h or 1d (once per interval across nodes); empty: on demand only (env MUSTER_AUDIT_INTERVAL)")
	fs.StringVar(&f.notSeen, "audit-not-seen", "30d", "audit: report live devices not seen for this long (env MUSTER_AUDIT_NOT_SEEN)")
	fs.StringVar(&f.certExpiry, "audit-cert-expiry", "30d", "audit: report device certificates expiring within this long (env MUSTER_AUDIT_CERT_EXPIRY)")
	fs.StringVar(&f.caExpiry, "audit-ca-expiry", "90d", "audit: report CA certificates expiring within this long (env MUSTER_AUDIT_CA_EXPIRY)")
	fs.StringVar(&f.maxCertAge, "audit-max-cert-age", "365d", "audit: report operational certificates issued longer ago (env MUSTER_AUDIT_MAX_CERT_AGE)")
}

// config reads the flags into the server's audit configuration.
func (f *auditFlags) config() (server.AuditConfig, error) {
	var cfg server.AuditConfig
	for _, d := range []struct {
		flag, v string
		dst     *time.Duration
	}{
		{"audit-interval", f.interval, &cfg.Interval}, {"audit-not-seen", f.notSeen, &cfg.Params.NotSeenAfter},
		{"audit-cert-expiry", f.certExpiry, &cfg.Params.CertExpiryWarning}, {"audit-ca-expiry", f.caExpiry, &cfg.Params.CAExpiryWarning},
		{"audit-max-cert-age", f.maxCertAge, &cfg.Params.MaxCertAge},
	} {
		if d.v == "" {
			continue
		}
		v, err := provision.ParseDuration(d.v)
		if err != nil || v <= 0 {
			return cfg, fmt.Errorf("--%s %q: give a positive duration such as 24h or 30d", d.flag, d.v)
		}
		*d.dst = time.Duration(v)
	}
	if cfg.Interval > 0 && cfg.Interval < time.Minute {
		return cfg, fmt.Errorf("--audit-interval %s: audit at most once a minute", cfg.Interval)
	}
	return cfg, nil
}
