package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/store"
)

// Server is a running Muster node.
type Server struct {
	cfg   Config
	store *store.Store
	cas   *authorities
	api   *http.Server
	apiLn net.Listener
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
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, Logger: cfg.logger()})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st}
	if err := s.init(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	cas, err := loadOrCreateAuthorities(ctx, s.cfg)
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
	cert, err := s.serverCertificate(ctx, s.cfg.APIAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("admin API: listen on %s: %w (is another muster running? use --api-addr)", s.cfg.APIAddr, err)
	}
	s.apiLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	handler := api.New(api.Config{Store: s.store, Logger: s.cfg.logger()}).Handler()
	s.api = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	// Clients on this host find the API through the data directory.
	return writeFileAtomic(s.cfg.path("api.addr"), []byte(s.APIAddr()+"\n"), 0o644)
}

// APIAddr is the address the admin API listens on (useful with port 0).
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// Store gives tests and commands access to the node's store.
func (s *Server) Store() *store.Store { return s.store }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.logger()
	errc := make(chan error, 1)
	go func() { errc <- s.api.Serve(s.apiLn) }()
	log.Info("muster is running",
		"admin_api", "https://"+s.APIAddr(),
		"data_dir", s.cfg.DataDir,
		"database", s.store.Backend(),
		"admin_token_file", s.cfg.path("admin.token"),
		"ca_file", s.cfg.path("ca.pem"))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.api.Shutdown(shutdownCtx)
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases what New acquired, for callers that never call Run.
func (s *Server) Close() error {
	s.apiLn.Close()
	return s.store.Close()
}
