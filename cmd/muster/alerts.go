package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newAlertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Alerts raised by behaviour detection, and the mitigations taken",
		Long: `Alerts are raised when a detection rule fires on a device (docs/detection.md).
They are deduplicated (a rule that keeps firing raises one alert's hit count),
move from open to acknowledged to resolved, and carry their evidence and the
mitigations their rule suggests or took automatically.`,
	}
	cmd.AddCommand(newAlertsListCmd(g), newAlertsShowCmd(g), newAlertsAckCmd(g), newAlertsResolveCmd(g),
		newAlertsMitigateCmd(g), newAlertsRevertCmd(g), newAlertsWatchCmd(g), newAlertsBaselinesCmd(g), newWebhooksCmd(g))
	return cmd
}

func alertRow(a *client.Alert) []string {
	return []string{a.ID, a.DeviceID, a.RuleID, a.Severity, a.State, strconv.FormatInt(a.Hits, 10), timestamp(a.LastSeen), a.Summary}
}

var alertHeader = []string{"ID", "DEVICE", "RULE", "SEVERITY", "STATE", "HITS", "LAST SEEN", "SUMMARY"}

func newAlertsListCmd(g *globals) *cobra.Command {
	var f client.AlertFilter
	var opts client.ListOptions
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List alerts, newest first",
		Example: `  muster alerts list --state open
  muster alerts list --device dev_01j9... --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(true, alertHeader...)
			return printListing(cmd, g, out, all, "alerts", c.Alerts(cmd.Context(), f),
				func() (*client.Page[client.Alert], error) { return c.ListAlerts(cmd.Context(), f, opts) },
				func(a *client.Alert) { out.add(a, alertRow(a)...) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.State, "state", "", "open, acknowledged or resolved")
	fl.StringVar(&f.Device, "device", "", "device id")
	fl.StringVar(&f.Rule, "rule", "", "rule id")
	fl.StringVar(&f.Severity, "severity", "", "low, medium, high or critical")
	bindPageFlags(cmd, &opts, &all, "alerts")
	return cmd
}

func newAlertsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an alert with its evidence and the actions taken",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			a, err := c.GetAlert(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printer(cmd).print(a, func(t *table) {
				t.row("ID", a.ID)
				t.row("Device", a.DeviceID)
				t.row("Rule", a.RuleID)
				t.row("Severity", a.Severity)
				t.row("State", a.State)
				t.row("Summary", a.Summary)
				t.row("Evidence", string(a.Evidence))
				t.row("Hits", fmt.Sprintf("%d (first %s, last %s)", a.Hits, timestamp(a.FirstSeen), timestamp(a.LastSeen)))
				t.row("Suggested actions", strings.Join(a.Actions, ", "))
				for _, act := range a.ActionsTaken {
					by := act.Actor
					if act.Auto {
						by += " (automatic)"
					}
					t.row("Action "+act.ID, fmt.Sprintf("%s %s by %s at %s: %s", act.Action, act.Status, by, timestamp(act.At), act.Detail))
				}
			})
		},
	}
}

// alertChange runs fn on one alert and prints the result.
func alertChange(g *globals, use, short string, fn func(ctx context.Context, c *client.Client, id string) (*client.Alert, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			a, err := fn(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return g.printer(cmd).print(a, func(t *table) {
				t.row(alertHeader...)
				t.row(alertRow(a)...)
			})
		},
	}
}

func newAlertsAckCmd(g *globals) *cobra.Command {
	return alertChange(g, "ack ID", "Acknowledge an alert: someone is looking at it", func(ctx context.Context, c *client.Client, id string) (*client.Alert, error) {
		return c.AcknowledgeAlert(ctx, id)
	})
}

func newAlertsResolveCmd(g *globals) *cobra.Command {
	var resolution string
	cmd := alertChange(g, "resolve ID", "Resolve an alert; the rule firing again opens a new one", func(ctx context.Context, c *client.Client, id string) (*client.Alert, error) {
		return c.ResolveAlert(ctx, id, resolution)
	})
	cmd.Flags().StringVar(&resolution, "resolution", "", "what was found or done, for the record")
	return cmd
}

func printAction(g *globals, cmd *cobra.Command, a *client.AlertAction) error {
	return g.printer(cmd).print(a, func(t *table) {
		t.row("ACTION ID", "ALERT", "DEVICE", "ACTION", "STATUS", "DETAIL")
		t.row(a.ID, a.AlertID, a.DeviceID, a.Action, a.Status, a.Detail)
	})
}

func newAlertsMitigateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "mitigate ALERT ACTION",
		Short: "Apply a mitigation to an alert's device: quarantine, suspend, revoke, rotate or group:NAME",
		Long: `Apply a mitigation to the device an alert is about. Every action is recorded in the
device's history with the alert id. quarantine restricts the device live to its
quarantine topics; suspend disconnects it; revoke revokes its certificates;
rotate tells it to renew its certificate; group:NAME adds it to a group.
quarantine, suspend and group:NAME can be reverted with muster alerts revert.`,
		Example: "  muster alerts mitigate alr_01j9... quarantine",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			a, err := c.MitigateAlert(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if perr := printAction(g, cmd, a); perr != nil {
				return perr
			}
			if a.Status == "failed" {
				return fmt.Errorf("the mitigation failed: %s", a.Detail)
			}
			return nil
		},
	}
}

func newAlertsRevertCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "revert ACTION_ID",
		Short:   "Undo a mitigation: un-quarantine, un-suspend, leave the group",
		Example: "  muster alerts revert act_01j9... --reason 'false positive: firmware update traffic'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			a, err := c.RevertAlertAction(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printAction(g, cmd, a)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the device's history")
	return cmd
}

// errEnough ends a watch after --count events.
var errEnough = errors.New("enough events")

func newAlertsWatchCmd(g *globals) *cobra.Command {
	var severity string
	var count int
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print alert events as they happen (the server-sent-event stream)",
		Long: `Follow the alert stream of the node the CLI talks to: one line per event
(alert.opened, alert.acknowledged, alert.resolved), or one JSON object per line
with --json. Stops on Ctrl-C, after --count events, or after --for.`,
		Example: "  muster alerts watch --severity high",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			n := 0
			w := cmd.OutOrStdout()
			err = c.WatchAlerts(ctx, severity, func(ev client.AlertEvent) error {
				if g.jsonOutput() {
					b, _ := json.Marshal(ev)
					fmt.Fprintf(w, "%s\n", b)
				} else {
					a := ev.Alert
					fmt.Fprintf(w, "%s %s %s %s %s %s\n", timestamp(a.LastSeen), ev.Event, a.ID, a.Severity, a.DeviceID, a.Summary)
				}
				if n++; count > 0 && n >= count {
					return errEnough
				}
				return nil
			})
			if errors.Is(err, errEnough) || (wait > 0 && errors.Is(err, context.DeadlineExceeded)) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&severity, "severity", "", "lowest severity to print")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many events")
	cmd.Flags().DurationVar(&wait, "for", 0, "stop after this long")
	return cmd
}

func newWebhooksCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Deliver alert events to URLs, signed with HMAC-SHA256",
	}
	var secret, secretFile, minSev string
	add := &cobra.Command{
		Use:   "add URL",
		Short: "Register a webhook",
		Long: `Register a URL (https, or http to localhost) that receives alert events as JSON
POSTs. Each carries X-Muster-Signature: sha256=HMAC(secret, timestamp "." body)
and X-Muster-Timestamp; failed deliveries are retried with backoff.`,
		Example: "  muster alerts webhooks add https://soc.example/muster --secret-file hook.secret --min-severity high",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return fmt.Errorf("read --secret-file: %w", err)
				}
				secret = strings.TrimSpace(string(b))
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			w, err := c.CreateWebhook(cmd.Context(), args[0], secret, minSev)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(w, func(t *table) {
				t.row("ID", "URL", "MIN SEVERITY")
				t.row(w.ID, w.URL, w.MinSeverity)
			})
		},
	}
	add.Flags().StringVar(&secret, "secret", "", "signing secret, at least 16 characters")
	add.Flags().StringVar(&secretFile, "secret-file", "", "read the signing secret from this file")
	add.Flags().StringVar(&minSev, "min-severity", "", "lowest severity delivered (default high)")
	add.MarkFlagsMutuallyExclusive("secret", "secret-file")
	list := &cobra.Command{
		Use:   "list",
		Short: "List webhooks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ws, err := c.Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "URL", "MIN SEVERITY", "CREATED BY")
			for i := range ws {
				out.add(&ws[i], ws[i].ID, ws[i].URL, ws[i].MinSeverity, ws[i].CreatedBy)
			}
			return out.close("")
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a webhook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			return c.DeleteWebhook(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}

func newAlertsBaselinesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "baselines DEVICE",
		Short: "What the node learned of a device's behaviour, and of its model's",
		Long: `Show the per-metric baselines (datapoints, mean, standard deviation) the node
the CLI talks to learned for a device and for its model, and whether the device
is still learning: statistical rules and the anomaly score judge a metric only
once it has the learning number of datapoints (docs/detection.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			b, err := c.DeviceBaselines(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printer(cmd).print(b, func(t *table) {
				state := "judged"
				switch {
				case !b.Observed:
					state = "not observed on this node"
				case b.Learning:
					state = fmt.Sprintf("learning (%d datapoints per metric needed)", b.LearningSamples)
				}
				t.row("DEVICE", b.DeviceID, state, "")
				t.row("SCOPE", "METRIC", "SAMPLES", "MEAN ± SD")
				for _, x := range b.Baselines {
					t.row("device", x.Metric, strconv.Itoa(x.Samples), fmt.Sprintf("%.4g ± %.3g", x.Mean, x.StdDev))
				}
				for _, x := range b.ModelBaselines {
					t.row("model "+b.Model, x.Metric, strconv.Itoa(x.Samples), fmt.Sprintf("%.4g ± %.3g", x.Mean, x.StdDev))
				}
			})
		},
	}
}
