package main

import (
	"context"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// The commands in this file each append one record to a device or move it
// along its lifecycle; the server stamps the time and the actor.

func newDevicesStateCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "state ID STATE",
		Short: "Move a device to another lifecycle state",
		Long: `Move a device to another lifecycle state. A change the lifecycle does not allow
is refused with the states that are allowed (docs/lifecycle.md). Use
"devices decommission" and "devices dispose" for the end of life: they record
the wipe and disposal evidence.`,
		Example: `  muster devices state dev_01j9... active --reason "installed at plant 7"`,
		Args:    cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return completeStates(cmd, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			return c.SetState(ctx, args[0], client.State(args[1]), reason)
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the state changes (recorded in the history)")
	return cmd
}

func newDevicesQCCmd(g *globals) *cobra.Command {
	var (
		qc       client.QCResult
		measures []string
	)
	cmd := &cobra.Command{
		Use:     "qc ID --test T --result R",
		Short:   "Record a quality-control result from the line",
		Example: `  muster devices qc dev_01j9... --test rf-power --result pass --station st-4 --measure dbm=17.2`,
		Args:    cobra.ExactArgs(1),
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			m, err := parseMeasurements("measure", measures)
			if err != nil {
				return nil, err
			}
			qc.Measurements = m
			return c.AddQC(ctx, args[0], qc)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&qc.Test, "test", "", "test name (required)")
	f.StringVar(&qc.Result, "result", "", "result: pass, fail or other text (required)")
	f.StringVar(&qc.Station, "station", "", "test station")
	f.StringArrayVar(&measures, "measure", nil, "measurement name=number (repeatable)")
	markRequired(cmd, "test", "result")
	_ = cmd.RegisterFlagCompletionFunc("result", cobra.FixedCompletions([]string{"pass", "fail"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDevicesTestCmd(g *globals) *cobra.Command {
	var tr client.TestResult
	cmd := &cobra.Command{
		Use:     "test ID --test T --result R",
		Short:   "Record a provisioning test or validation result",
		Example: `  muster devices test dev_01j9... --test mqtt-connect --result pass --detail "rtt 41ms"`,
		Args:    cobra.ExactArgs(1),
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			return c.AddTest(ctx, args[0], tr)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&tr.Test, "test", "", "test name (required)")
	f.StringVar(&tr.Result, "result", "", "result: pass, fail or other text (required)")
	f.StringVar(&tr.Detail, "detail", "", "details")
	markRequired(cmd, "test", "result")
	_ = cmd.RegisterFlagCompletionFunc("result", cobra.FixedCompletions([]string{"pass", "fail"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDevicesMaintenanceCmd(g *globals) *cobra.Command {
	var m client.MaintenanceItem
	cmd := &cobra.Command{
		Use:     "maintenance ID --problem P",
		Short:   "Record diagnosing and fixing a problem",
		Example: `  muster devices maintenance dev_01j9... --problem "no uplink" --diagnosis "antenna loose" --action reseated --outcome fixed --technician kim`,
		Args:    cobra.ExactArgs(1),
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			return c.AddMaintenance(ctx, args[0], m)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&m.Problem, "problem", "", "the problem (required)")
	f.StringVar(&m.Diagnosis, "diagnosis", "", "what caused it")
	f.StringVar(&m.Action, "action", "", "what was done")
	f.StringVar(&m.Outcome, "outcome", "", "the result")
	f.StringVar(&m.Technician, "technician", "", "who did it")
	markRequired(cmd, "problem")
	return cmd
}

func newDevicesDecommissionCmd(g *globals) *cobra.Command {
	var req client.DecommissionRequest
	cmd := &cobra.Command{
		Use:   "decommission ID --reason R --wipe-method M --wipe-by WHO",
		Short: "Take a device out of service, with its data-wipe attestation",
		Example: `  muster devices decommission dev_01j9... --reason "end of contract" \
    --wipe-method nist-800-88-purge --wipe-by kim --wipe-evidence ticket-4711`,
		Args: cobra.ExactArgs(1),
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			return c.Decommission(ctx, args[0], req)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Reason, "reason", "", "why the device is retired (required)")
	f.StringVar(&req.Wipe.Method, "wipe-method", "", "how its data was destroyed, e.g. nist-800-88-purge or crypto-erase (required)")
	f.StringVar(&req.Wipe.By, "wipe-by", "", "who wiped it (required)")
	f.StringVar(&req.Wipe.Evidence, "wipe-evidence", "", "evidence: a report, ticket or log reference")
	markRequired(cmd, "reason", "wipe-method", "wipe-by")
	_ = cmd.RegisterFlagCompletionFunc("wipe-method", cobra.FixedCompletions(
		[]string{"nist-800-88-clear", "nist-800-88-purge", "nist-800-88-destroy", "crypto-erase"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newDevicesDisposeCmd(g *globals) *cobra.Command {
	var d client.Disposal
	cmd := &cobra.Command{
		Use:   "dispose ID --method recycle|destroy|return|refurbish",
		Short: "Record what happened to a decommissioned device",
		Long: `Record the physical fate of a decommissioned device. The device ends in state
disposed, or refurbished with --method refurbish (it can then re-enter the line).`,
		Example: `  muster devices dispose dev_01j9... --method recycle --facility "GreenCycle Rotterdam" --certificate GC-2026-118`,
		Args:    cobra.ExactArgs(1),
		RunE: g.deviceChange(func(ctx context.Context, c *client.Client, args []string) (*client.Device, error) {
			return c.Dispose(ctx, args[0], d)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&d.Method, "method", "", "recycle, destroy, return or refurbish (required)")
	f.StringVar(&d.Facility, "facility", "", "facility that took the device")
	f.StringVar(&d.Certificate, "certificate", "", "disposal or recycling certificate")
	markRequired(cmd, "method")
	_ = cmd.RegisterFlagCompletionFunc("method", cobra.FixedCompletions(
		[]string{"recycle", "destroy", "return", "refurbish"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// markRequired marks flags required; cobra then names the missing ones in
// its error before anything is sent.
func markRequired(cmd *cobra.Command, flags ...string) {
	for _, f := range flags {
		if err := cmd.MarkFlagRequired(f); err != nil {
			panic(err) // a typo in a flag name: a programming error
		}
	}
}
