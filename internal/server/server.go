package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/audit"
	"github.com/muster-iot/muster/internal/est"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/provision"
	regionpkg "github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/store"
)

// Server is a running Muster node.
type Server struct {
	cfg    Config
	store  *store.Store
	cas    *authorities
	rev    *revocation.Service
	api    *http.Server
	apiLn  net.Listener
	device *DeviceListener
	gw     *gateway.Gateway
	pki    *http.Server
	pkiLn  net.Listener
	hub    *notify.Hub
	jobs   *jobs.Runner
	detect *detection
	audit  *audit.Runner
}

// New initialises the data directory, opens the store, loads or creates the
// CAs and the admin token, and binds the listeners. It serves nothing until
// Run is called, so callers learn about a taken port before anything runs.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory: set --data-dir or MUSTER_DATA_DIR")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	// hub carries notices of changes to what this node caches (issue 6).
	hub := notify.NewHub()
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, Logger: cfg.logger(), Notifier: hub})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, hub: hub}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	log := s.cfg.logger()
	cas, err := openAuthorities(ctx, s.cfg, s.store)
	if err != nil {
		return err
	}
	s.cas = cas
	if err := writeFileAtomic(s.cfg.path("ca.pem"), cas.root.CertificatePEM(), 0o644); err != nil {
		return err
	}
	if err := ensureAdminToken(ctx, s.store, s.cfg); err != nil {
		return err
	}
	leases, err := s.newLeases()
	if err != nil {
		return err
	}
	s.rev, err = revocation.New(revocation.Config{Store: s.store, Issuers: cas.registry, Logger: log, Leases: s.crlLeases(leases)})
	if err != nil {
		return err
	}

	// Admin API.
	cert, err := s.serverCertificate(ctx, s.cfg.APIAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("admin API: listen on %s: %w (is another muster running? use --api-addr)", s.cfg.APIAddr, err)
	}
	s.apiLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})

	// Device listener: client certificates required, checked at the handshake.
	var deviceCert tls.Certificate // also signs the bootstrap document
	s.device, err = NewDeviceListener(ctx, DeviceListenerConfig{
		Addr: s.cfg.DeviceAddr, Trust: cas.registry, Revocation: s.rev, Devices: s.rev,
		PKI: revocation.PKIHandler(s.rev), Logger: log,
		ServerCertificate: func(ctx context.Context) (tls.Certificate, error) {
			var err error
			deviceCert, err = s.serverCertificate(ctx, s.cfg.DeviceAddr)
			return deviceCert, err
		},
	})
	if err != nil {
		return err
	}

	// One provisioning pipeline behind every front door: the JSON API and
	// EST on the device listener, claims on the admin listener (a claimed
	// device has no client certificate yet).
	region := s.cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	regions, err := regionpkg.New(regionpkg.Config{Store: s.store, Node: region, Hysteresis: s.cfg.RegionHysteresis, Logger: log})
	if err != nil {
		return err
	}
	prov, err := provision.New(provision.Config{
		Store: s.store, Issuer: provision.RegistryIssuer{Registry: cas.registry},
		Region: region, Regions: regions,
		Endpoints: provision.Endpoints{Provisioning: "https://" + advertised(s.device.Addr(), s.cfg.TLSHosts)},
		Logger:    log,
	})
	if err != nil {
		return err
	}
	provision.RegisterJSON(s.device, prov)
	if err := regionRoutes(s.device, regions, cas.registry, deviceCert, log); err != nil {
		return err
	}
	est.Register(s.device, prov, log)

	// The device gateway: the embedded MQTT broker.
	node := s.cfg.nodeID()
	// Behaviour detection observes what the gateway meters and what
	// devices report (docs/detection.md).
	s.detect, err = newDetection(ctx, s.store, s.rev, s.cfg.Detect, node, log)
	if err != nil {
		return err
	}
	s.gw, err = gateway.New(ctx, gateway.Config{
		Addr: s.cfg.MQTTAddr, WSAddr: s.cfg.MQTTWSAddr,
		Trust: cas.registry, Revocation: s.rev,
		Devices: s.store, Presence: s.store, Updater: s.store, Meters: s.store,
		Node: node, Logger: log, Provisioner: prov, Redirect: regions,
		Observer: s.detect, MeterWindow: s.cfg.Detect.MeterWindow,
		ServerCertificate: func(ctx context.Context) (tls.Certificate, error) {
			return s.serverCertificate(ctx, s.cfg.MQTTAddr)
		},
	})
	if err != nil {
		return err
	}
	s.subscribe(prov)
	if err := writeFileAtomic(s.cfg.path("mqtt.addr"), []byte(advertised(s.gw.Addr(), s.cfg.TLSHosts)+"\n"), 0o644); err != nil {
		return err
	}
	if s.cfg.Region != "" && s.cfg.Region != DefaultRegion {
		if err := registerNodeRegion(ctx, s.store, region, advertised(s.device.Addr(), s.cfg.TLSHosts), advertised(s.gw.Addr(), s.cfg.TLSHosts), log); err != nil {
			return err
		}
	}
	jobService := s.newJobRunner(leases)
	if s.audit, err = s.newAuditRunner(ctx); err != nil {
		return err
	}
	// The API comes after the gateway: it sends device commands through it.
	s.detect.useGateway(s.gw)
	handler := prov.ClaimHandler(api.New(api.Config{Store: s.store, Logger: log, Revoker: s.rev, CAs: cas.registry, Commander: s.gw,
		Alerts: s.detect.alerts, Detector: s.detect, Auditor: s.audit, Jobs: jobService}).Handler())
	s.api = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	// CRLs, OCSP and the Prometheus metrics over plain HTTP, as their
	// clients expect.
	if s.cfg.PKIAddr != "" {
		s.pkiLn, err = net.Listen("tcp", s.cfg.PKIAddr)
		if err != nil {
			return fmt.Errorf("PKI listener: listen on %s: %w (use --pki-addr, or --pki-addr '' to disable it)", s.cfg.PKIAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/pki/", revocation.PKIHandler(s.rev))
		mux.Handle("GET /metrics", s.gw.MetricsHandler())
		s.pki = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := writeFileAtomic(s.cfg.path("pki.addr"), []byte(s.pkiLn.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	// Devices and the device commands on this host find the listener here.
	if err := writeFileAtomic(s.cfg.path("device.addr"), []byte(advertised(s.device.Addr(), s.cfg.TLSHosts)+"\n"), 0o644); err != nil {
		return err
	}
	// Clients on this host find the API through the data directory.
	return writeFileAtomic(s.cfg.path("api.addr"), []byte(s.APIAddr()+"\n"), 0o644)
}

// APIAddr is the address the admin API listens on (useful with port 0).
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// DeviceAddr is the address of the device listener.
func (s *Server) DeviceAddr() string { return s.device.Addr() }

// Store gives tests and commands access to the node's store.
func (s *Server) Store() *store.Store { return s.store }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.logger()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	serve := func(name string, fn func() error) {
		wg.Go(func() {
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	serve("revocation", func() error { return s.rev.Run(ctx) })
	serve("notifications", func() error { return s.listen(ctx) })
	serve("job runner", func() error { return s.jobs.Run(ctx) })
	serve("admin API", func() error { return s.api.Serve(s.apiLn) })
	serve("device listener", func() error { return s.device.Serve(ctx) })
	serve("device gateway", func() error { return s.gw.Serve(ctx) })
	serve("detection", func() error { return s.detect.run(ctx) })
	serve("audit schedule", func() error { return s.runAudits(ctx) })
	if s.pki != nil {
		serve("PKI listener", func() error { return s.pki.Serve(s.pkiLn) })
	}
	attrs := []any{
		"admin_api", "https://" + s.APIAddr(),
		"device_listener", "https://" + s.device.Addr(),
		"mqtt", "mqtts://" + s.gw.Addr(),
		"data_dir", s.cfg.DataDir,
		"database", s.store.Backend(),
		"admin_token_file", s.cfg.path("admin.token"),
		"ca_file", s.cfg.path("ca.pem"),
	}
	if s.pkiLn != nil {
		attrs = append(attrs, "pki", "http://"+s.pkiLn.Addr().String())
	}
	log.Info("muster is running", attrs...)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	_ = s.api.Shutdown(shutdownCtx)
	if s.pki != nil {
		_ = s.pki.Shutdown(shutdownCtx)
	}
	wg.Wait()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close releases what New acquired, for callers that never call Run.
func (s *Server) Close() error {
	for _, ln := range []net.Listener{s.apiLn, s.pkiLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if s.device != nil {
		s.device.Close()
	}
	if s.gw != nil {
		s.gw.Close()
	}
	if s.cas != nil {
		s.cas.close()
	}
	return s.store.Close()
}

// advertised is the host:port devices are told to use for a listener: the
// first configured TLS host when the listener binds every interface.
func advertised(addr string, hosts []string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
		if len(hosts) > 0 {
			host = hosts[0]
		}
	}
	return net.JoinHostPort(host, port)
}
