package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/agent"
)

func newDeviceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: provision, renew and use MQTT with the agent library",
	}
	cmd.AddCommand(newDeviceProvisionCmd(g), newDeviceRenewCmd(g), newDeviceMQTTCmd(g))
	return cmd
}

// deviceFlags are what a command-line device needs to reach Muster.
type deviceFlags struct {
	server, ca, template, protocol, keyAlg string
	params                                 []string
	maxWait                                time.Duration
	// regions measures every region's probe before provisioning
	// (docs/regions.md), probeSamples times each.
	regions      bool
	probeSamples int
}

func (f *deviceFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "https://localhost:9443", "the device listener's URL (--device-addr of muster serve)")
	fl.StringVar(&f.ca, "ca", "./muster-data/ca.pem", "Muster's root CA certificate (ca.pem), to check the server")
	fl.StringVar(&f.template, "template", "", "provisioning template (default: the device's own, else \"default\")")
	fl.StringVar(&f.protocol, "protocol", agent.ProtocolJSON, "json or est")
	fl.StringVar(&f.keyAlg, "key-algorithm", "ecdsa-p256", "operational key: ecdsa-p256, ecdsa-p384 or rsa-3072")
	fl.StringArrayVar(&f.params, "param", nil, "template parameter NAME=VALUE (repeatable; numbers and true/false are typed)")
	fl.DurationVar(&f.maxWait, "wait", 10*time.Minute, "how long to wait for approval or rate limits")
	fl.BoolVar(&f.regions, "regions", false, "fetch the signed bootstrap document, time every region's probe and send the measurements (lowest-latency allocation)")
	fl.IntVar(&f.probeSamples, "probe-samples", agent.DefaultProbeSamples, "samples per region probe with --regions")
}

// config builds an agent configuration from the flags.
func (f *deviceFlags) config() (agent.Config, error) {
	pemData, err := os.ReadFile(f.ca)
	if err != nil {
		return agent.Config{}, fmt.Errorf("read --ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		return agent.Config{}, fmt.Errorf("--ca %s holds no PEM certificate", f.ca)
	}
	cfg := agent.Config{Server: f.server, Roots: roots, Template: f.template, Protocol: f.protocol, KeyAlgorithm: f.keyAlg, MaxWait: f.maxWait,
		Regions: f.regions, ProbeSamples: f.probeSamples}
	for _, p := range f.params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return agent.Config{}, fmt.Errorf("--param %q: want NAME=VALUE", p)
		}
		if cfg.Parameters == nil {
			cfg.Parameters = map[string]any{}
		}
		cfg.Parameters[name] = typedParam(value)
	}
	return cfg, nil
}

// typedParam gives numbers and booleans their JSON type, as template
// parameters of type int and bool expect.
func typedParam(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		return b
	}
	return v
}

// provisioned is what device commands print.
type provisioned struct {
	DeviceID    string    `json:"deviceId"`
	Credentials string    `json:"credentials"`
	NotAfter    time.Time `json:"notAfter"`
	Region      string    `json:"region,omitempty"`
}

func printProvisioned(g *globals, cmd *cobra.Command, dir string, c *agent.Credentials) error {
	out := provisioned{DeviceID: c.DeviceID, Credentials: filepath.Join(dir, agent.CredentialsFile), NotAfter: c.Certificate.NotAfter, Region: c.Info.Region}
	return g.printer(cmd).print(out, func(t *table) {
		t.row("Device", out.DeviceID)
		t.row("Credentials", out.Credentials)
		t.row("Valid until", timestamp(out.NotAfter))
		if out.Region != "" {
			t.row("Region", out.Region)
		}
	})
}

func newDeviceProvisionCmd(g *globals) *cobra.Command {
	var f deviceFlags
	var birthCert, birthKey, claim, out string
	cmd := &cobra.Command{
		Use:   "provision --birth-cert FILE --birth-key FILE --out DIR",
		Short: "Provision (or re-provision) a device with its birth certificate, as the device would",
		Example: `  muster device provision --birth-cert out/SN-0001.crt --birth-key out/SN-0001.key \
      --server https://localhost:9443 --ca muster-data/ca.pem --out device-SN-0001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			switch {
			case claim != "":
				cfg.Claim, cfg.ClaimServer = claim, f.server
			case birthCert == "" || birthKey == "":
				return errors.New("give --birth-cert and --birth-key (or --claim for a device without a birth certificate)")
			default:
				if cfg.Birth, err = tls.LoadX509KeyPair(birthCert, birthKey); err != nil {
					return fmt.Errorf("load the birth certificate: %w", err)
				}
			}
			cfg.Dir = out
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			c, err := a.Provision(cmd.Context())
			if err != nil {
				return deviceError(err)
			}
			return printProvisioned(g, cmd, out, c)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&birthCert, "birth-cert", "", "the device's birth certificate (PEM)")
	fl.StringVar(&birthKey, "birth-key", "", "the birth certificate's key (PEM)")
	fl.StringVar(&claim, "claim", "", "an installer's claim secret, for a device without a birth certificate (--server is then the claim URL's host)")
	fl.StringVar(&out, "out", "", "directory for the operational credentials (required)")
	markRequired(cmd, "out")
	return cmd
}

func newDeviceRenewCmd(g *globals) *cobra.Command {
	var f deviceFlags
	var dir string
	cmd := &cobra.Command{
		Use:   "renew --dir DIR",
		Short: "Renew a provisioned device's certificate with its operational credentials",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			cfg.Dir = dir
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			c, err := a.Renew(cmd.Context())
			if err != nil {
				return deviceError(err)
			}
			return printProvisioned(g, cmd, dir, c)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&dir, "dir", "", "the device's credentials directory (from device provision --out)")
	markRequired(cmd, "dir")
	return cmd
}

// deviceError adds what to do to the agent's errors.
func deviceError(err error) error {
	switch {
	case errors.Is(err, agent.ErrRefused):
		return fmt.Errorf("%w: Muster does not tell a device why; an operator finds the reason in the device's history (muster devices history ID)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: still waiting (approval?); run the same command again to resume with the same request", err)
	}
	return err
}
