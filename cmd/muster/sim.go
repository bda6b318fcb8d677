package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/agent"
)

func newSimCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate devices against a Muster server",
	}
	cmd.AddCommand(newSimProvisionCmd(g), newSimFleetCmd(g), newSimLatencyCmd(g))
	return cmd
}

// simReport is what sim provision prints.
type simReport struct {
	Devices       int      `json:"devices"`
	OK            int      `json:"ok"`
	Failed        int      `json:"failed"`
	Seconds       float64  `json:"seconds"`
	PerSecond     float64  `json:"perSecond"`
	LatencyMs     latency  `json:"latencyMs"`
	FirstFailures []string `json:"firstFailures,omitempty"`
}

type latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func newSimProvisionCmd(g *globals) *cobra.Command {
	var f deviceFlags
	var batch string
	var concurrency int
	cmd := &cobra.Command{
		Use:   "provision --batch DIR",
		Short: "Provision every device of a manufactured batch (<serial>.crt and .key), each over a new mTLS connection",
		Long: `Provision every device of a batch directory as written by
"muster mfg batch submit --key-mode mint --out DIR": each <serial>.crt with its
<serial>.key is one device. Each device makes its own key and CSR and provisions
over a new mTLS connection, as real devices do. Credentials are kept in memory
only. Prints throughput and latency percentiles.`,
		Example: "  muster sim provision --batch out --concurrency 64 --server https://localhost:9443 --ca muster-data/ca.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			devices, err := batchDevices(batch)
			if err != nil {
				return err
			}
			rep := simulate(cmd, cfg, devices, max(concurrency, 1))
			err = g.printer(cmd).print(rep, func(t *table) {
				t.row("Devices", fmt.Sprint(rep.Devices))
				t.row("Provisioned", fmt.Sprint(rep.OK))
				t.row("Failed", fmt.Sprint(rep.Failed))
				t.row("Time", fmt.Sprintf("%.2f s", rep.Seconds))
				t.row("Throughput", fmt.Sprintf("%.0f devices/s", rep.PerSecond))
				t.row("Latency", fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", rep.LatencyMs.P50, rep.LatencyMs.P90, rep.LatencyMs.P99, rep.LatencyMs.Max))
				for _, e := range rep.FirstFailures {
					t.row("Failure", e)
				}
			})
			if err == nil && rep.Failed > 0 {
				err = fmt.Errorf("%d of %d devices failed to provision", rep.Failed, rep.Devices)
			}
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&batch, "batch", "", "batch directory with <serial>.crt and <serial>.key files (required)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 32, "devices provisioning at once")
	markRequired(cmd, "batch")
	return cmd
}

// batchDevices lists the birth credentials of a batch directory.
func batchDevices(dir string) ([][2]string, error) {
	certs, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, c := range certs {
		key := strings.TrimSuffix(c, ".crt") + ".key"
		if _, err := os.Stat(key); err == nil {
			out = append(out, [2]string{c, key})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no <serial>.crt with a <serial>.key in %s; write a batch with --key-mode mint --out %s", dir, dir)
	}
	return out, nil
}

// simulate provisions devices with concurrency workers.
func simulate(cmd *cobra.Command, base agent.Config, devices [][2]string, concurrency int) simReport {
	jobs := make(chan [2]string)
	var mu sync.Mutex
	var lat []time.Duration
	var failures []string
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for d := range jobs {
				t0 := time.Now()
				err := simulateOne(cmd, base, d)
				took := time.Since(t0)
				mu.Lock()
				if err != nil {
					failures = append(failures, filepath.Base(d[0])+": "+err.Error())
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range devices {
		jobs <- d
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	rep := simReport{Devices: len(devices), OK: len(lat), Failed: len(failures), Seconds: elapsed.Seconds(), PerSecond: float64(len(lat)) / elapsed.Seconds()}
	rep.LatencyMs = percentiles(lat)
	rep.FirstFailures = failures[:min(len(failures), 5)]
	return rep
}

func simulateOne(cmd *cobra.Command, base agent.Config, files [2]string) error {
	birth, err := tls.LoadX509KeyPair(files[0], files[1])
	if err != nil {
		return err
	}
	cfg := base
	cfg.Birth = birth
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	_, err = a.Provision(cmd.Context())
	if errors.Is(err, agent.ErrRefused) {
		return errors.New("refused (see the device history)")
	}
	return err
}
