package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/server"
	"github.com/muster-iot/muster/internal/store"
)

// serverFlags are the settings of `muster serve` and `muster migrate`; each
// flag also reads a MUSTER_* environment variable.
type serverFlags struct {
	databaseURL, apiAddr, deviceAddr, pkiAddr, region, nodeID string
	regionHysteresis                                          string
	mqttAddr, mqttWSAddr                                      string
	passFile, keyAlg, logLevel                                string
	tlsHosts                                                  []string
	// leaseTTL is how long a dead node's singleton work (jobs, CRLs)
	// waits before another node takes it over.
	leaseTTL time.Duration
	// jobRetention is how long finished bulk jobs are kept; 0 keeps them.
	jobRetention time.Duration
	// pkcs11Module, pkcs11Token and pkcs11PINFile select an HSM for the CA
	// keys (bindCA).
	pkcs11Module, pkcs11Token, pkcs11PINFile string
	// audit schedules the configuration audit (audit_run.go).
	audit auditFlags
	// detect tunes behaviour detection (detect_flags.go).
	detect detectFlags
}

func (f *serverFlags) bind(fs *pflag.FlagSet, withListeners bool) {
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL (postgres://...); default SQLite in the data directory (env MUSTER_DATABASE_URL)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (env MUSTER_LOG_LEVEL)")
	if !withListeners {
		return
	}
	fs.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:8443", "admin API HTTPS listen address (env MUSTER_API_ADDR)")
	fs.StringVar(&f.deviceAddr, "device-addr", server.DefaultDeviceAddr, "device listener HTTPS address, client certificates required (env MUSTER_DEVICE_ADDR)")
	fs.StringVar(&f.mqttAddr, "mqtt-addr", gateway.DefaultAddr, "device gateway: MQTT over TLS, client certificates required (env MUSTER_MQTT_ADDR)")
	fs.StringVar(&f.mqttWSAddr, "mqtt-ws-addr", "", "also serve MQTT over WebSocket (TLS, path /mqtt) here; empty disables it (env MUSTER_MQTT_WS_ADDR)")
	fs.StringVar(&f.region, "region", server.DefaultRegion, "the region this node serves (env MUSTER_REGION)")
	fs.StringVar(&f.regionHysteresis, "region-hysteresis", region.DefaultHysteresis.String(), "when a device re-homes: another region better by RATIO%/MARGIN in REPORTS consecutive reports (env MUSTER_REGION_HYSTERESIS)")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's name among nodes sharing a database; default the host name (env MUSTER_NODE_ID)")
	fs.DurationVar(&f.leaseTTL, "lease-ttl", lease.DefaultTTL, "how long a node's leases on bulk jobs and CRL publication live unrenewed: a dead node's work moves to another node after this (env MUSTER_LEASE_TTL)")
	fs.DurationVar(&f.jobRetention, "job-retention", jobs.DefaultRetention, "how long finished bulk jobs (their manifest and per-row results) are kept before they are deleted; 0 keeps them (env MUSTER_JOB_RETENTION)")
	fs.StringVar(&f.pkiAddr, "pki-addr", "127.0.0.1:8080", "plain-HTTP address for CRLs and OCSP; empty disables it (env MUSTER_PKI_ADDR)")
	f.bindCA(fs)
	f.audit.bind(fs)
	f.detect.bind(fs)
	fs.StringSliceVar(&f.tlsHosts, "tls-host", nil, "extra DNS name or IP for the server's TLS certificates, repeatable (env MUSTER_TLS_HOSTS, comma-separated)")
}

// bindCA binds the flags that say where CA keys live, which `muster serve`
// and `muster ca init` share.
func (f *serverFlags) bindCA(fs *pflag.FlagSet) {
	fs.StringVar(&f.passFile, "ca-passphrase-file", "", "file holding the CA key passphrase; or set MUSTER_CA_PASSPHRASE (env MUSTER_CA_PASSPHRASE_FILE); default <data-dir>/ca.passphrase")
	fs.StringVar(&f.keyAlg, "key-algorithm", "ecdsa-p256", "key algorithm for new CAs: ecdsa-p256, ecdsa-p384 or rsa-3072 (env MUSTER_KEY_ALGORITHM)")
	fs.StringVar(&f.pkcs11Module, "pkcs11-module", "", "PKCS#11 module for CA keys on an HSM instead of key files, e.g. /usr/lib/softhsm/libsofthsm2.so (env MUSTER_PKCS11_MODULE)")
	fs.StringVar(&f.pkcs11Token, "pkcs11-token", "", "label of the PKCS#11 token holding the CA keys (env MUSTER_PKCS11_TOKEN)")
	fs.StringVar(&f.pkcs11PINFile, "pkcs11-pin-file", "", "file holding the token's user PIN; or set MUSTER_PKCS11_PIN (env MUSTER_PKCS11_PIN_FILE)")
}

// pkcs11Config is the HSM the flags select, or nil for key files. The PIN
// comes from MUSTER_PKCS11_PIN or the PIN file, never from a flag, so it
// stays out of process listings.
func (f *serverFlags) pkcs11Config() (*server.PKCS11Config, error) {
	if f.pkcs11Module == "" && f.pkcs11Token == "" {
		return nil, nil
	}
	if f.pkcs11Module == "" || f.pkcs11Token == "" {
		return nil, fmt.Errorf("PKCS#11 needs both --pkcs11-module and --pkcs11-token")
	}
	pin := os.Getenv("MUSTER_PKCS11_PIN")
	if f.pkcs11PINFile != "" {
		b, err := os.ReadFile(f.pkcs11PINFile)
		if err != nil {
			return nil, fmt.Errorf("--pkcs11-pin-file: %w", err)
		}
		pin = strings.TrimSpace(string(b))
	}
	return &server.PKCS11Config{ModulePath: f.pkcs11Module, TokenLabel: f.pkcs11Token, PIN: pin}, nil
}

// fromEnv fills every flag the user did not set from its MUSTER_* variable.
func fromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		env := "MUSTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Name == "tls-host" {
			env = "MUSTER_TLS_HOSTS"
		}
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", env, serr)
			}
		}
	})
	return err
}

// config turns the flags (and their MUSTER_* variables) into a server
// configuration; serve and ca init share it so they open the same CAs.
func (f *serverFlags) config(cmd *cobra.Command) (server.Config, error) {
	if err := fromEnv(cmd.Flags()); err != nil {
		return server.Config{}, err
	}
	log, err := f.logger()
	if err != nil {
		return server.Config{}, err
	}
	hsm, err := f.pkcs11Config()
	if err != nil {
		return server.Config{}, err
	}
	var hyst region.Hysteresis
	if f.regionHysteresis != "" {
		if hyst, err = region.ParseHysteresis(f.regionHysteresis); err != nil {
			return server.Config{}, fmt.Errorf("--region-hysteresis: %w", err)
		}
	}
	auditCfg, err := f.audit.config()
	if err != nil {
		return server.Config{}, err
	}
	detectCfg, err := f.detect.config()
	if err != nil {
		return server.Config{}, err
	}
	// Leases are renewed every third of their life; below a second a slow
	// database round trip would lose them.
	if f.leaseTTL != 0 && f.leaseTTL < time.Second {
		return server.Config{}, fmt.Errorf("--lease-ttl %v: use at least 1s (default %v)", f.leaseTTL, lease.DefaultTTL)
	}
	if f.jobRetention < 0 {
		return server.Config{}, fmt.Errorf("--job-retention %v: must not be negative (0 keeps finished jobs; default %v)", f.jobRetention, jobs.DefaultRetention)
	}
	return server.Config{
		Audit:            auditCfg,
		Detect:           detectCfg,
		DataDir:          dataDir(cmd),
		DatabaseURL:      f.databaseURL,
		PKCS11:           hsm,
		APIAddr:          f.apiAddr,
		DeviceAddr:       f.deviceAddr,
		PKIAddr:          f.pkiAddr,
		Region:           f.region,
		RegionHysteresis: hyst,
		NodeID:           f.nodeID,
		LeaseTTL:         f.leaseTTL,
		JobRetention:     f.jobRetention,
		MQTTAddr:         f.mqttAddr,
		MQTTWSAddr:       f.mqttWSAddr,
		CAPassphrase:     []byte(os.Getenv(pki.PassphraseEnv)),
		CAPassphraseFile: f.passFile,
		KeyAlgorithm:     f.keyAlg,
		TLSHosts:         f.tlsHosts,
		Logger:           log,
	}, nil
}

func (f *serverFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// dataDir reads the root's persistent --data-dir, or MUSTER_DATA_DIR.
func dataDir(cmd *cobra.Command) string {
	f := cmd.Flag("data-dir")
	if !f.Changed {
		if v := os.Getenv("MUSTER_DATA_DIR"); v != "" {
			return v
		}
	}
	return f.Value.String()
}

func newServeCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Muster server",
		Long: `Run a Muster node. On first start it creates the data directory, the CA
hierarchy (root, operational and server CAs), and an admin API token in
<data-dir>/admin.token; the admin API's CA certificate is <data-dir>/ca.pem.
Later starts reuse them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			srv, err := server.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f.bind(cmd.Flags(), true)
	return cmd
}

// newMigrateCmd applies database migrations and exits.
func newMigrateCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Long:  "Apply the embedded database migrations (serve also applies them at start). Safe to run from several nodes at once.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fromEnv(cmd.Flags()); err != nil {
				return err
			}
			log, err := f.logger()
			if err != nil {
				return err
			}
			dir := dataDir(cmd)
			if f.databaseURL == "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return err
				}
			}
			st, err := store.Open(cmd.Context(), store.Config{URL: f.databaseURL, DataDir: dir, Logger: log})
			if err != nil {
				return err
			}
			defer st.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "migrations applied (%s)\n", st.Backend())
			return nil
		},
	}
	f.bind(cmd.Flags(), false)
	return cmd
}
