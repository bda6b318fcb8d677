// Package api is Muster's admin REST API: devices and their lifecycle,
// history and passports, API tokens and the fleet audit log. One route table
// (routes.go) drives the HTTP mux, authentication and authorization, and the
// OpenAPI document, so the three cannot disagree. docs/api-contract.md is the
// contract this package implements.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/mfg/batch"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// DeviceStore is the device registry the API reads and changes.
type DeviceStore interface {
	CreateDevice(ctx context.Context, d *fleet.Device, actor string) error
	GetDevice(ctx context.Context, id string) (*fleet.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter, cursor string, limit int) ([]*fleet.Device, string, error)
	CountDevices(ctx context.Context, f store.DeviceFilter) (int64, error)
	UpdateDevice(ctx context.Context, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*store.Change, error)) (*fleet.Device, error)
	DeviceComponents(ctx context.Context, id string) ([]fleet.Component, error)
}

// HistoryStore reads hash-chained histories: a device's, or the fleet audit
// log under fleet.FleetSubject.
type HistoryStore interface {
	History(ctx context.Context, subject string) ([]fleet.Event, error)
}

// TokenStore keeps API tokens, hashed.
type TokenStore interface {
	CreateToken(ctx context.Context, t *store.Token, actor string) error
	TokenByHash(ctx context.Context, hash string) (*store.Token, error)
	GetToken(ctx context.Context, id string) (*store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	RevokeToken(ctx context.Context, id, actor string) error
}

// CertificateStore reads the certificates Muster issued.
type CertificateStore interface {
	CertificatesByDevice(ctx context.Context, deviceID string) ([]store.Certificate, error)
	CertificateStatus(ctx context.Context, caID, serial string) (*store.Certificate, error)
}

// Revoker revokes certificates with RFC 5280 reason codes.
// *revocation.Service applies a revocation to its own node before it
// returns; *store.Store only records it, and every node applies it within
// its revocation refresh interval.
type Revoker interface {
	RevokeCertificate(ctx context.Context, caID, serial string, reason int, actor string) error
	RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error)
}

// FactoryStore reads registered factories; they are created through the
// CA registry, which gives each its CA.
type FactoryStore interface {
	GetFactory(ctx context.Context, name string) (*store.Factory, error)
	ListFactories(ctx context.Context) ([]store.Factory, error)
}

// BatchStore records manufacturing batches; the batch processor writes the
// units through batch.Registry.
type BatchStore interface {
	batch.Registry
	CreateBatch(ctx context.Context, b *store.Batch, actor string) error
	FinishBatch(ctx context.Context, id, status string, totals store.BatchTotals) error
	GetBatch(ctx context.Context, id string) (*store.Batch, error)
}

// Store is everything the API needs from storage; *store.Store satisfies it.
type Store interface {
	DeviceStore
	HistoryStore
	TokenStore
	CertificateStore
	Revoker
	FactoryStore
	BatchStore
	ProvisioningStore
}

// CARegistry is the CA registry as the API uses it; *ca.Registry has it.
type CARegistry interface {
	batch.Authorities
	AddFactory(ctx context.Context, req ca.FactoryRequest, actor string) (*ca.Authority, error)
	Challenge(ctx context.Context, factory string, ttl time.Duration, actor string) (*store.Challenge, error)
	List(ctx context.Context, f store.CAFilter) ([]store.CA, error)
	Chains(ctx context.Context) ([]ca.Chain, error)
	Rotate(ctx context.Context, p pki.Purpose, factory string, overlap time.Duration, actor string) (*ca.Authority, error)
	AddRegionalCA(ctx context.Context, region, actor string) (*ca.Authority, error)
	RegionalCA(ctx context.Context, region string) (*ca.Authority, error)
}

var _ CARegistry = (*ca.Registry)(nil)

// The SQL store is the production implementation; say so at compile time.
var _ Store = (*store.Store)(nil)

// Config configures a Server.
type Config struct {
	// Store is required.
	Store Store
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for timestamps the API fills in and for token
	// expiry; nil means time.Now. Tests pin it.
	Now func() time.Time
	// Revoker revokes certificates; nil means Store. Nodes pass their
	// revocation service, so a revocation applies to the node that made it
	// before the API answers.
	Revoker Revoker
	// CAs is the CA registry behind factories, batches and the CA routes;
	// without it those routes answer 503.
	CAs CARegistry
	// Batches tunes the batch processor, such as the validity of birth
	// certificates.
	Batches batch.Options
	// Commander publishes commands to devices (the device gateway);
	// without it the command routes answer 503.
	Commander DeviceCommander
	// Alerts changes alerts and applies mitigations; nil builds a manager
	// on Store. Detector is the node's behaviour detector, told to reload
	// after rule and intelligence changes; optional.
	Alerts   AlertManager
	Detector Detector
	// Jobs starts and reads bulk jobs; nil means a jobs.Service over
	// Store when Store is the SQL store (the jobs routes answer 503
	// otherwise).
	Jobs JobService
	// Auditor runs configuration audits; nil means an audit.Runner with
	// the default thresholds over Store when Store keeps audit data.
	Auditor Auditor
}

// Server serves the admin API. It holds no mutable state of its own, so one
// Server may serve any number of concurrent requests.
type Server struct {
	store     Store
	revoker   Revoker
	cas       CARegistry
	commander DeviceCommander
	alerts    AlertManager
	detector  Detector
	jobs      JobService       // nil: the jobs routes answer 503
	auditor   Auditor          // nil: running audits answers 503
	batches   *batch.Processor // nil without cas
	log       *slog.Logger
	now       func() time.Time
	mux       *http.ServeMux
	openapi   []byte
	// patterns lists every pattern registered on mux, in registration
	// order, so tests can prove the OpenAPI document covers all of them.
	patterns []string
}

// New returns a Server for cfg. It panics when cfg.Store is nil: a server
// without storage is a programming error, not a runtime condition.
func New(cfg Config) *Server {
	if cfg.Store == nil {
		panic("api.New: Config.Store is required")
	}
	s := &Server{
		store:     cfg.Store,
		revoker:   cfg.Revoker,
		commander: cfg.Commander,
		log:       cfg.Logger,
		now:       cfg.Now,
		mux:       http.NewServeMux(),
	}
	if s.revoker == nil {
		s.revoker = cfg.Store
	}
	s.alerts, s.detector = cfg.Alerts, cfg.Detector
	if s.alerts == nil {
		s.alerts = newAlertManager(cfg.Store, s.revoker, cfg.Commander)
	}
	s.auditor = cfg.Auditor
	if s.auditor == nil {
		s.auditor = defaultAuditor(cfg)
	}
	s.jobs = cfg.Jobs
	if st, ok := cfg.Store.(*store.Store); ok && s.jobs == nil {
		s.jobs = jobs.NewService(jobs.Config{Store: st, Logger: cfg.Logger})
	}
	if cfg.CAs != nil {
		s.cas = cfg.CAs
		s.batches = batch.NewProcessor(cfg.Store, cfg.CAs, cfg.Batches)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	table := routes()
	for _, rt := range table {
		pattern := rt.method + " " + rt.pattern
		s.mux.Handle(pattern, s.handler(rt))
		s.patterns = append(s.patterns, pattern)
	}
	doc, err := openAPIDocument(table)
	if err != nil {
		// The document depends only on the route table and Go types, so
		// this fails for every build or none; the OpenAPI test catches it.
		panic("api.New: building the OpenAPI document: " + err.Error())
	}
	s.openapi = doc
	return s
}

// Handler returns the HTTP handler of the whole API. TLS, timeouts and
// listening are the caller's business.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// serveHTTP answers requests no route matches in the API's JSON error shape;
// ServeMux alone would answer them in plain text.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404, 405 (with Allow) and a redirect to
	// the cleaned path, then translate its verdict.
	probe := &statusProbe{header: http.Header{}}
	s.mux.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "",
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow")))
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
		w.Header().Set("Location", probe.header.Get("Location"))
		w.WriteHeader(probe.status)
	default:
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "", "no route for %s %s; see /v1/openapi.json", r.Method, r.URL.Path))
	}
}

// statusProbe records what the mux would answer without sending it.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

// healthStatus is the answer of GET /v1/healthz.
type healthStatus struct {
	Status string `json:"status"`
}

// health says the process serves requests. It does not touch the database:
// a liveness probe that fails with the database would restart healthy
// processes during a database outage.
func (s *Server) health(*http.Request) (healthStatus, error) {
	return healthStatus{Status: "ok"}, nil
}
