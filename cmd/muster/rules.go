package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Behaviour detection rules: static and statistical thresholds, anomaly scores, intelligence",
		Long: `Detection rules decide when a device's behaviour raises an alert
(docs/detection.md). A new installation starts with the default rules; change,
add or delete them here. Every node applies a change within seconds.`,
	}
	cmd.AddCommand(newRulesListCmd(g), newRulesSetCmd(g), newRulesDeleteCmd(g))
	return cmd
}

// ruleThreshold describes a rule's threshold for tables.
func ruleThreshold(r *client.Rule) string {
	op := r.Op
	if op == "" {
		op = ">"
	}
	switch r.Kind {
	case "device", "fleet":
		s := fmt.Sprintf("%s %s %g × p%g", r.Metric, op, r.Factor, r.Percentile)
		if r.Min > 0 {
			s += fmt.Sprintf(" (min %g)", r.Min)
		}
		return s
	case "static":
		return fmt.Sprintf("%s %s %g", r.Metric, op, r.Value)
	case "anomaly":
		return fmt.Sprintf("score %s %g", op, r.Value)
	}
	return ""
}

func newRulesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the detection rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			rules, err := c.Rules(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "KIND", "THRESHOLD", "CONSECUTIVE", "SEVERITY", "ACTIONS", "AUTO", "DISABLED")
			for i := range rules {
				r := &rules[i]
				out.add(r, r.ID, r.Kind, ruleThreshold(r), strconv.Itoa(r.Consecutive), r.Severity, strings.Join(r.Actions, ","),
					strconv.FormatBool(r.Auto), strconv.FormatBool(r.Disabled))
			}
			return out.close("")
		},
	}
}

func newRulesSetCmd(g *globals) *cobra.Command {
	var r client.Rule
	var file string
	cmd := &cobra.Command{
		Use:   "set ID",
		Short: "Create or replace a rule",
		Long: `Create or replace rule ID, from flags or from a JSON file (--file, - for stdin).

Kinds: static (metric op value), device (metric op factor × the device's own
percentile, never below --min), fleet (the same over the device's model),
anomaly (multi-metric score op value), intel (an address matches an indicator),
firmware (the reported firmware version went down). --consecutive datapoints
must breach in a row; --duration sums datapoints over a period first.`,
		Example: `  muster rules set telnet-scan --kind device --metric report.remotePorts --percentile 99.9 --factor 3 --min 10 --severity high --action quarantine --auto
  muster rules set brute --kind static --metric authorizationFailures --value 50 --duration 15m --severity medium
  muster rules set custom-cpu --file rule.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				b, err := readInput(cmd, file)
				if err != nil {
					return err
				}
				r = client.Rule{}
				if err := json.Unmarshal(b, &r); err != nil {
					return fmt.Errorf("%s is not a rule in JSON: %w", file, err)
				}
			}
			r.ID = args[0]
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.PutRule(cmd.Context(), r)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(out, func(t *table) {
				t.row("ID", "KIND", "THRESHOLD", "CONSECUTIVE", "SEVERITY", "ACTIONS", "AUTO")
				t.row(out.ID, out.Kind, ruleThreshold(out), strconv.Itoa(out.Consecutive), out.Severity, strings.Join(out.Actions, ","), strconv.FormatBool(out.Auto))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "read the rule from this JSON file, - for standard input")
	f.StringVar(&r.Kind, "kind", "", "static, device, fleet, anomaly, intel or firmware")
	f.StringVar(&r.Metric, "metric", "", "metric: a gateway metric (connects, bytesIn, authorizationFailures, sourceIps, …), report.… or custom.NAME")
	f.StringVar(&r.Op, "op", "", "comparison: >, >=, < or <= (default >)")
	f.Float64Var(&r.Value, "value", 0, "threshold of static rules, score of anomaly rules")
	f.Float64Var(&r.Percentile, "percentile", 0, "percentile of device and fleet rules: 50, 90, 95, 99 or 99.9")
	f.Float64Var(&r.Factor, "factor", 0, "multiplies the percentile (default 1)")
	f.Float64Var(&r.Min, "min", 0, "the statistical threshold never goes below this")
	f.StringVar(&r.Duration, "duration", "", "sum datapoints over this period before judging (e.g. 15m)")
	f.IntVar(&r.Consecutive, "consecutive", 0, "breaching datapoints in a row before the rule fires (default 1)")
	f.StringVar(&r.Severity, "severity", "", "low, medium, high or critical")
	f.StringSliceVar(&r.Actions, "action", nil, "mitigation: quarantine, suspend, revoke, rotate or group:NAME (repeatable)")
	f.BoolVar(&r.Auto, "auto", false, "apply the actions automatically when the rule fires")
	f.BoolVar(&r.Disabled, "disabled", false, "keep the rule but do not evaluate it")
	cmd.MarkFlagsMutuallyExclusive("file", "kind")
	return cmd
}

func newRulesDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a rule (deleted default rules stay deleted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			return c.DeleteRule(cmd.Context(), args[0])
		},
	}
}
