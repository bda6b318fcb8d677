package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/internal/deviceauth"
	"github.com/muster-iot/muster/internal/pki"
)

// DefaultDeviceAddr is where the device listener listens unless told.
const DefaultDeviceAddr = ":9443"

// DeviceIdentityPath answers a device with the identity its certificate
// proved; devices and installers use it to check their credentials.
const DeviceIdentityPath = "/v1/device/identity"

// DeviceResolver finds the device a certificate was issued to;
// *revocation.Service implements it.
type DeviceResolver interface {
	DeviceOf(ctx context.Context, issuer *x509.Certificate, serial *big.Int) (string, error)
}

// DeviceListenerConfig configures NewDeviceListener.
type DeviceListenerConfig struct {
	// Addr defaults to DefaultDeviceAddr.
	Addr string
	// Trust (the CA registry) and Revocation (the revocation service) are
	// required: every handshake checks the client's chain against them.
	Trust      pki.TrustSource
	Revocation pki.RevocationChecker
	// ServerCertificate returns the listener's TLS certificate, issued by
	// the server CA. It is called once, by NewDeviceListener.
	ServerCertificate func(ctx context.Context) (tls.Certificate, error)
	// PKI, when set, is served under /pki/ (CRLs, OCSP, CA certificates)
	// to every verified device.
	PKI http.Handler
	// Devices, when set, lets the identity route name the device of a
	// birth certificate.
	Devices DeviceResolver
	Logger  *slog.Logger
}

// DeviceListener is the HTTPS endpoint devices reach with their client
// certificates. A client certificate that is revoked, expired or not from a
// CA trusted for its kind fails the handshake, so no handler ever sees it;
// every route then admits only the identity kinds it names (Handle).
type DeviceListener struct {
	verifier *pki.Verifier
	devices  DeviceResolver
	// renewal are the patterns registered with HandleRenewal: the only
	// routes an expired operational certificate may reach. Written before
	// Serve, read-only after.
	renewal map[string]bool
	mux     *http.ServeMux
	srv     *http.Server
	ln      net.Listener
	log     *slog.Logger
}

// connIdentityKey finds a connection's connIdentity in its context.
type connIdentityKey struct{}

// connIdentity is where the handshake leaves the identity it verified for
// the requests of that connection, so they need not verify it again.
type connIdentity struct {
	id atomic.Pointer[pki.Identity]
	// expired marks an operational certificate past its NotAfter, admitted
	// for renewal only (HandleRenewal).
	expired atomic.Bool
}

// NewDeviceListener binds the device listener; Serve serves it. Binding
// first lets the caller learn about a taken port before anything runs.
func NewDeviceListener(ctx context.Context, cfg DeviceListenerConfig) (*DeviceListener, error) {
	verifier, err := pki.NewVerifier(cfg.Trust, cfg.Revocation)
	if err != nil {
		return nil, fmt.Errorf("device listener: %w", err)
	}
	if cfg.ServerCertificate == nil {
		return nil, errors.New("device listener: a server certificate is required")
	}
	cert, err := cfg.ServerCertificate(ctx)
	if err != nil {
		return nil, fmt.Errorf("device listener: server certificate: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultDeviceAddr
	}
	l := &DeviceListener{verifier: verifier, devices: cfg.Devices, renewal: map[string]bool{}, mux: http.NewServeMux(), log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// RequireAnyClientCert leaves chain verification to
		// verifyConnection, which knows Muster's per-kind anchors and
		// checks revocation; crypto/tls alone knows neither.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	tlsCfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := tlsCfg.Clone()
		c.GetConfigForClient = nil
		c.VerifyConnection = l.verifyConnection(hello.Context())
		return c, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device listener: listen on %s: %w (use --device-addr)", addr, err)
	}
	l.ln = tls.NewListener(ln, tlsCfg)
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connIdentityKey{}, &connIdentity{})
		},
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	both := []pki.IdentityKind{pki.IdentityBirth, pki.IdentityOperational}
	l.Handle("GET "+DeviceIdentityPath, both, http.HandlerFunc(l.serveIdentity))
	if cfg.PKI != nil {
		l.Handle("/pki/", both, cfg.PKI)
	}
	return l, nil
}

// verifyConnection checks a client's chain once per handshake (resumed
// sessions included, so a revoked device cannot ride an old session) and
// leaves the identity for the connection's requests. ctx is the
// connection's context.
func (l *DeviceListener) verifyConnection(ctx context.Context) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		now := time.Now()
		id, err := l.verifier.Verify(ctx, cs.PeerCertificates, now)
		expired := false
		if errors.Is(err, pki.ErrExpired) && len(l.renewal) > 0 {
			id, expired, err = l.verifyExpired(ctx, cs.PeerCertificates, now, err)
		}
		if err != nil {
			// Logged, never told: the device sees only a failed handshake.
			l.log.InfoContext(ctx, "device handshake refused", "err", err)
			return err
		}
		if holder, ok := ctx.Value(connIdentityKey{}).(*connIdentity); ok {
			holder.id.Store(&id)
			holder.expired.Store(expired)
		}
		return nil
	}
}

// verifyExpired gives an operational certificate that failed only because
// it has expired a second look: verified as of the second before it
// expired (chain, kind and revocation all still checked), with every CA of
// its chain still valid now. Anything else keeps the original error.
func (l *DeviceListener) verifyExpired(ctx context.Context, chain []*x509.Certificate, now time.Time, orig error) (pki.Identity, bool, error) {
	leaf := chain[0]
	if !now.After(leaf.NotAfter) {
		return pki.Identity{}, false, orig
	}
	id, err := l.verifier.Verify(ctx, chain, leaf.NotAfter.Add(-time.Second))
	if err != nil || id.Kind != pki.IdentityOperational {
		return pki.Identity{}, false, orig
	}
	for _, ca := range id.Chain[1:] {
		if now.Before(ca.NotBefore) || now.After(ca.NotAfter) {
			return pki.Identity{}, false, orig
		}
	}
	return id, true, nil
}

// Handle registers a device route. pattern is a ServeMux pattern; kinds
// are the identity kinds the route admits (birth for provisioning,
// operational for renewal and the like). Other kinds, and every identity
// when kinds is empty, are refused with 403. Unregistered paths answer 404.
func (l *DeviceListener) Handle(pattern string, kinds []pki.IdentityKind, h http.Handler) {
	l.mux.Handle(pattern, deviceauth.Require(kinds, l.log, h))
}

// HandleRenewal registers a renewal route: operational identities only,
// and the one kind of route an operational certificate that has expired
// (but is otherwise valid and unrevoked) still reaches, so that the
// template's renewal policy, not the TLS handshake, decides whether it may
// renew. Every other route refuses an expired certificate.
func (l *DeviceListener) HandleRenewal(pattern string, h http.Handler) {
	l.Handle(pattern, []pki.IdentityKind{pki.IdentityOperational}, h)
	l.renewal[pattern] = true
}

// pattern is the registered pattern r is routed to ("" for none).
func (l *DeviceListener) pattern(r *http.Request) string {
	_, p := l.mux.Handler(r)
	return p
}

// serveHTTP puts the connection's verified identity into the request's
// context and routes the request.
func (l *DeviceListener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	holder, _ := r.Context().Value(connIdentityKey{}).(*connIdentity)
	var id *pki.Identity
	if holder != nil {
		id = holder.id.Load()
	}
	if id == nil {
		// Unreachable through the TLS listener; refuse rather than serve
		// a request nobody verified.
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if holder.expired.Load() && !l.renewal[l.pattern(r)] {
		l.log.InfoContext(r.Context(), "expired operational certificate refused outside renewal", "device", id.DeviceID, "path", r.URL.Path)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	l.mux.ServeHTTP(w, r.WithContext(deviceauth.WithIdentity(r.Context(), *id)))
}

// identityAnswer is the answer of GET /v1/device/identity.
type identityAnswer struct {
	Kind     pki.IdentityKind `json:"kind"`
	Factory  string           `json:"factory,omitempty"`
	Serial   string           `json:"serial,omitempty"`
	Model    string           `json:"model,omitempty"`
	DeviceID string           `json:"deviceId,omitempty"`
	// External marks a birth certificate of a maker's own CA.
	External bool `json:"external,omitempty"`
}

func (l *DeviceListener) serveIdentity(w http.ResponseWriter, r *http.Request) {
	id, _ := deviceauth.IdentityFrom(r.Context())
	ans := identityAnswer{Kind: id.Kind, Factory: id.Factory, Serial: id.Serial, Model: id.Model, DeviceID: id.DeviceID, External: id.External}
	if ans.DeviceID == "" && l.devices != nil && len(id.Chain) > 1 {
		dev, err := l.devices.DeviceOf(r.Context(), id.Chain[1], id.Certificate.SerialNumber)
		if err != nil {
			l.log.DebugContext(r.Context(), "device identity: no device for the certificate", "serial", id.Serial, "err", err)
		}
		ans.DeviceID = dev
	}
	body, err := json.Marshal(ans)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(body, '\n'))
}

// Addr is the address the listener is bound to (useful with port 0).
func (l *DeviceListener) Addr() string { return l.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down gracefully, giving requests
// in flight up to ten seconds.
func (l *DeviceListener) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.srv.Serve(l.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("device listener: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := l.srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("device listener: shut down: %w", err)
	}
	return nil
}

// Close releases the listener without serving, for callers that never
// call Serve.
func (l *DeviceListener) Close() error { return l.ln.Close() }
