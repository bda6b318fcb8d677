package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newDevicesMetricsCmd(g *globals) *cobra.Command {
	var since, until time.Duration
	cmd := &cobra.Command{
		Use:   "metrics ID",
		Short: "Show a device's gateway presence and metering windows",
		Long: `Show whether a device is connected to the gateway, when it was last seen, and
what the gateway counted for it in each metering window (default 5 minutes):
connection attempts, connects, authorization failures, messages and bytes in
and out, reports, disconnect reasons, topics and source addresses.`,
		Example: "  muster devices metrics dev_01j9... --since 1h",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since <= 0 || until < 0 || until >= since {
				return fmt.Errorf("--since must be positive and longer than --until (got %v and %v)", since, until)
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			now := time.Now()
			m, err := c.DeviceMetrics(cmd.Context(), args[0], now.Add(-since), now.Add(-until))
			if err != nil {
				return err
			}
			return g.printer(cmd).print(m, func(t *table) { metricsTable(t, m) })
		},
	}
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "show windows that started this long ago or later")
	cmd.Flags().DurationVar(&until, "until", 0, "and up to this long ago")
	return cmd
}

// metricsTable renders presence as a heading row, then one row per window.
func metricsTable(t *table, m *client.DeviceMetrics) {
	switch p := m.Presence; {
	case p == nil:
		t.row("PRESENCE", "never connected")
	case p.Connected:
		t.row("PRESENCE", "connected to "+p.Node+" from "+p.Remote+" since "+p.ConnectedAt.Format(time.RFC3339))
	default:
		t.row("PRESENCE", "disconnected; last seen "+p.LastSeen.Format(time.RFC3339))
	}
	t.row("WINDOW", "ATTEMPTS", "CONNECTS", "AUTH-FAILURES", "MSGS-IN", "MSGS-OUT", "BYTES-IN", "BYTES-OUT", "REPORTS", "DISCONNECTS", "TOPICS", "SOURCE-IPS")
	for _, w := range m.Windows {
		t.row(w.Start.Local().Format("2006-01-02 15:04"), itoa64(w.Attempts), itoa64(w.Connects), itoa64(w.AuthFailures),
			itoa64(w.MsgsIn), itoa64(w.MsgsOut), itoa64(w.BytesIn), itoa64(w.BytesOut),
			fmt.Sprintf("%d (%d rejected)", w.Reports, w.BadReports), reasons(w.Disconnects),
			itoa64(int64(len(w.Topics))), strings.Join(w.SourceIPs, ","))
	}
}

func itoa64(n int64) string { return fmt.Sprint(n) }

// reasons renders disconnect counts as "client:2,revoked:1", sorted.
func reasons(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
