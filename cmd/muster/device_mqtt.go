package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/agent"
)

func newDeviceMQTTCmd(g *globals) *cobra.Command {
	var dir, mqttAddr, ca, payload string
	var publish, subscribe []string
	var every, duration time.Duration
	cmd := &cobra.Command{
		Use:   "mqtt --dir DIR [--publish TOPIC]... [--subscribe FILTER]...",
		Short: "Connect to the MQTT gateway as a provisioned device and publish or subscribe",
		Long: `Connect to the gateway with the operational credentials in --dir (written by
muster device provision), as the device, with its device id as client id. Each
--subscribe and --publish is tried once and its outcome printed: ok, or refused
when the gateway's topic policy does not allow it. The exit status is 1 when
anything was refused or failed.

With --every, the publishes are repeated at that interval for --for, one line
per attempt with its time, until the time is up or the gateway ends the session
(the reason is printed): a way to watch quarantine and revocation apply live.`,
		Example: `  muster device mqtt --dir dev-1001 --publish 'devices/dev_…/telemetry' --payload '{"t":21}'
  muster device mqtt --dir dev-1001 --subscribe '$SYS/#'
  muster device mqtt --dir dev-1001 --publish 'devices/dev_…/telemetry' --every 100ms --for 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dataDir := g.setting("data-dir", "MUSTER_DATA_DIR")
			if mqttAddr == "" {
				addr, err := readDataFile(dataDir, "mqtt.addr")
				if err != nil {
					return fmt.Errorf("no --mqtt, and no mqtt.addr in %s: %w", dataDir, err)
				}
				mqttAddr = strings.TrimSpace(string(addr))
			}
			if ca == "" {
				ca = filepath.Join(dataDir, "ca.pem")
			}
			pemData, err := os.ReadFile(ca)
			if err != nil {
				return fmt.Errorf("read --ca: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pemData) {
				return fmt.Errorf("--ca %s holds no PEM certificate", ca)
			}
			// The agent needs a server URL, though it only connects to MQTT
			// here; renewals on a rotate command go to the listener the
			// credentials came from.
			a, err := agent.New(agent.Config{Server: "https://" + mqttAddr, Roots: roots, Dir: dir})
			if err != nil {
				return err
			}
			if _, err := a.Load(); err != nil {
				return fmt.Errorf("load the device's credentials from --dir %s: %w", dir, err)
			}
			out := cmd.OutOrStdout()
			s, err := a.ConnectMQTT(cmd.Context(), agent.MQTTConfig{Addr: mqttAddr, OnMessage: func(topic string, payload []byte) {
				fmt.Fprintf(out, "%s message %s: %s\n", stamp(), topic, payload)
			}})
			if err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(out, "%s connected as %s\n", stamp(), s.DeviceID())
			refused := 0
			for _, f := range subscribe {
				refused += outcome(out, "subscribe "+f, s.Subscribe(cmd.Context(), f))
			}
			if every <= 0 {
				for _, t := range publish {
					refused += outcome(out, "publish "+t, s.Publish(cmd.Context(), t, []byte(payload)))
				}
			} else {
				refused += repeatPublish(cmd.Context(), out, s, publish, []byte(payload), every, duration)
			}
			if refused > 0 {
				return fmt.Errorf("%d refused by the gateway or failed", refused)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "the device's credentials directory (muster device provision --out; required)")
	fl.StringVar(&mqttAddr, "mqtt", "", "the gateway's host:port (default <data-dir>/mqtt.addr)")
	fl.StringVar(&ca, "ca", "", "Muster's root CA certificate (default <data-dir>/ca.pem)")
	fl.StringArrayVar(&publish, "publish", nil, "topic to publish to at QoS 1 (repeatable)")
	fl.StringVar(&payload, "payload", "{}", "payload of the publishes")
	fl.StringArrayVar(&subscribe, "subscribe", nil, "topic filter to subscribe to at QoS 1 (repeatable)")
	fl.DurationVar(&every, "every", 0, "repeat the publishes at this interval")
	fl.DurationVar(&duration, "for", 10*time.Second, "how long to repeat with --every")
	markRequired(cmd, "dir")
	return cmd
}

// repeatPublish publishes every interval until the time is up or the
// session ends, and returns how many publishes were refused or failed.
func repeatPublish(ctx context.Context, out io.Writer, s *agent.Session, topics []string, payload []byte, every, duration time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	refused := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, t := range topics {
			if err := s.Publish(ctx, t, payload); ctx.Err() == nil {
				refused += outcome(out, "publish "+t, err)
			}
		}
		select {
		case <-ctx.Done():
			return refused
		case <-s.Done():
			fmt.Fprintf(out, "%s session ended: %v\n", stamp(), s.Err())
			return refused
		case <-tick.C:
		}
	}
}

// outcome prints what the gateway answered and counts a refusal or
// failure.
func outcome(out io.Writer, what string, err error) int {
	switch {
	case err == nil:
		fmt.Fprintf(out, "%s %s: ok\n", stamp(), what)
	case errors.Is(err, agent.ErrNotAuthorized):
		fmt.Fprintf(out, "%s %s: refused (not authorized)\n", stamp(), what)
		return 1
	default:
		fmt.Fprintf(out, "%s %s: failed: %v\n", stamp(), what, err)
		return 1
	}
	return 0
}

func stamp() string { return time.Now().Format("15:04:05.000") }
