package revocation_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
	"github.com/muster-iot/muster/internal/store"
)

// applyWithin is the guarantee: a revocation applies to new
// connections on every node within one second. Tests poll up to ten
// times that, so a loaded machine does not make them flaky: the time it
// took is logged, and measured in BENCHMARKS.md, not asserted.
const applyWithin = time.Second

// fixture is one database with a CA hierarchy.
type fixture struct {
	url string
	st  *store.Store
	pki *revocationtest.PKI
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := revocationtest.StoreURL(t)
	return &fixture{url: url, st: revocationtest.OpenStore(t, url), pki: revocationtest.NewPKI(t, "f1")}
}

// node starts a Service on st, as a node does, and waits until it is ready.
func (f *fixture) node(t *testing.T, st *store.Store, adjust ...func(*revocation.Config)) *revocation.Service {
	t.Helper()
	cfg := revocation.Config{Store: st, Issuers: f.pki}
	for _, a := range adjust {
		a(&cfg)
	}
	svc, err := revocation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "the service loads", func() bool { return svc.Ready() == nil })
	return svc
}

// eventually polls cond until it holds, failing after ten times the
// one-second guarantee.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*applyWithin {
			t.Fatalf("%s: not within %v", what, 10*applyWithin)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func isRevoked(t *testing.T, svc *revocation.Service, issuer *x509.Certificate, serial *big.Int) bool {
	t.Helper()
	revoked, err := svc.IsRevoked(t.Context(), issuer, serial)
	if err != nil {
		t.Fatalf("IsRevoked: %v", err)
	}
	return revoked
}

func TestIsRevokedFailsClosed(t *testing.T) {
	f := newFixture(t)
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	svc, err := revocation.New(revocation.Config{Store: f.st, Issuers: f.pki, Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	issuer, serial := f.pki.Manufacturing.Certificate(), big.NewInt(42)
	if _, err := svc.IsRevoked(t.Context(), issuer, serial); !errors.Is(err, revocation.ErrUnavailable) {
		t.Fatalf("IsRevoked before the first refresh = %v, want ErrUnavailable", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	eventually(t, "the service loads", func() bool { return svc.Ready() == nil })
	if isRevoked(t, svc, issuer, serial) {
		t.Fatal("unknown serial reported revoked")
	}
	cancel()
	<-done

	// With no refresh for longer than MaxStaleness, the node can no longer
	// tell revoked certificates apart and refuses them all.
	later := start.Add(revocation.DefaultMaxStaleness + time.Second)
	now.Store(&later)
	if _, err := svc.IsRevoked(t.Context(), issuer, serial); !errors.Is(err, revocation.ErrUnavailable) {
		t.Fatalf("IsRevoked on a stale set = %v, want ErrUnavailable", err)
	}
}

func TestRevokeAppliesAtOnce(t *testing.T) {
	f := newFixture(t)
	svc := f.node(t, f.st)
	d := f.pki.Device(t, f.st)
	birth := f.pki.BirthCredential(t, f.st, d)
	op := f.pki.OperationalCredential(t, f.st, d)
	mfg := f.pki.Manufacturing.Certificate()
	if isRevoked(t, svc, mfg, birth.Certificate.SerialNumber) {
		t.Fatal("fresh certificate reported revoked")
	}

	if err := svc.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, birth.Certificate.SerialNumber.Text(16),
		revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	// No waiting: the revoking node applies it before the call returns.
	if !isRevoked(t, svc, mfg, birth.Certificate.SerialNumber) {
		t.Fatal("revoked certificate not reported revoked right after revoking")
	}
	if isRevoked(t, svc, f.pki.Operational.Certificate(), op.Certificate.SerialNumber) {
		t.Fatal("the device's other certificate reported revoked")
	}
	// The same serial under another CA is another certificate.
	if isRevoked(t, svc, f.pki.Operational.Certificate(), birth.Certificate.SerialNumber) {
		t.Fatal("serial revoked under the wrong CA")
	}

	st, err := svc.CertStatus(t.Context(), mfg, birth.Certificate.SerialNumber)
	if err != nil || st.Status != pki.StatusRevoked || st.Reason != revocation.ReasonKeyCompromise || st.RevokedAt.IsZero() {
		t.Fatalf("CertStatus(revoked) = %+v, %v", st, err)
	}
	st, err = svc.CertStatus(t.Context(), f.pki.Operational.Certificate(), op.Certificate.SerialNumber)
	if err != nil || st.Status != pki.StatusGood {
		t.Fatalf("CertStatus(good) = %+v, %v", st, err)
	}
	st, err = svc.CertStatus(t.Context(), mfg, big.NewInt(12345))
	if err != nil || st.Status != pki.StatusUnknown {
		t.Fatalf("CertStatus(never issued) = %+v, %v", st, err)
	}

	// The CRL was renewed before the call returned.
	crl, err := svc.CRL(t.Context(), revocationtest.ManufacturingID)
	if err != nil {
		t.Fatal(err)
	}
	parsed := parseCRL(t, crl.DER, mfg)
	if len(parsed.RevokedCertificateEntries) != 1 || parsed.RevokedCertificateEntries[0].SerialNumber.Cmp(birth.Certificate.SerialNumber) != 0 {
		t.Fatalf("CRL entries = %+v", parsed.RevokedCertificateEntries)
	}
	if parsed.RevokedCertificateEntries[0].ReasonCode != revocation.ReasonKeyCompromise {
		t.Errorf("CRL reason = %d", parsed.RevokedCertificateEntries[0].ReasonCode)
	}

	n, err := svc.RevokeDeviceCertificates(t.Context(), d.ID, revocation.ReasonCessationOfOperation, "operator/ops")
	if err != nil || n != 1 {
		t.Fatalf("RevokeDeviceCertificates = %d, %v, want 1 (the birth certificate was revoked already)", n, err)
	}
	if !isRevoked(t, svc, f.pki.Operational.Certificate(), op.Certificate.SerialNumber) {
		t.Fatal("operational certificate not revoked with the device's")
	}

	// The history records both revocations and still verifies.
	events, err := f.st.History(t.Context(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[1].Type != fleet.EventCertificateRevoked || events[2].Type != fleet.EventCertificateRevoked {
		t.Fatalf("history = %+v", events)
	}
	if br := fleet.VerifyChain(events); br != nil {
		t.Fatalf("history broken at %d: %s", br.Seq, br.Reason)
	}
}

// A second node sharing the database applies a revocation made on the
// first within the guarantee, through its own refresh loop.
func TestRevocationReachesOtherNodes(t *testing.T) {
	f := newFixture(t)
	nodeA := f.node(t, f.st)
	otherStore := revocationtest.OpenStore(t, f.url)
	nodeB := f.node(t, otherStore)
	d := f.pki.Device(t, f.st)
	birth := f.pki.BirthCredential(t, f.st, d)
	mfg := f.pki.Manufacturing.Certificate()
	if isRevoked(t, nodeB, mfg, birth.Certificate.SerialNumber) {
		t.Fatal("fresh certificate reported revoked on node B")
	}
	if err := nodeA.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, birth.Certificate.SerialNumber.Text(16),
		revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "node B applies the revocation", func() bool {
		return isRevoked(t, nodeB, mfg, birth.Certificate.SerialNumber)
	})
	t.Logf("node B applied the revocation after %v", took)

	// Node B's CRL endpoint serves the CRL node A published.
	crl, err := nodeB.CRL(t.Context(), revocationtest.ManufacturingID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseCRL(t, crl.DER, mfg).RevokedCertificateEntries); n != 1 {
		t.Fatalf("node B's CRL lists %d certificates, want 1", n)
	}
}

// CRLs are signed at start, renewed when revocations change them and
// when due, and their numbers only grow, also across nodes.
func TestCRLPublication(t *testing.T) {
	f := newFixture(t)
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	clock := func(c *revocation.Config) {
		c.Now = func() time.Time { return *now.Load() }
		c.CRLInterval = time.Hour
	}
	svc := f.node(t, f.st, clock)
	var first *store.CRL
	eventually(t, "the first CRL is published", func() bool {
		var err error
		first, err = f.st.LatestCRL(t.Context(), revocationtest.OperationalID)
		return err == nil
	})
	if n := len(parseCRL(t, first.DER, f.pki.Operational.Certificate()).RevokedCertificateEntries); n != 0 {
		t.Fatalf("first CRL lists %d certificates", n)
	}
	if got := first.NextUpdate.Sub(first.ThisUpdate); got != revocation.DefaultCRLValidity {
		t.Errorf("CRL validity %v, want %v", got, revocation.DefaultCRLValidity)
	}

	// Asking again before it is due gives the same CRL.
	again, err := svc.CRL(t.Context(), revocationtest.OperationalID)
	if err != nil || again.Number != first.Number {
		t.Fatalf("CRL before due = %+v, %v; want number %d", again, err, first.Number)
	}

	// A node whose publisher does not run still serves a CRL past its
	// nextUpdate by signing a new one on demand.
	past := t0.Add(revocation.DefaultCRLValidity + time.Minute)
	now.Store(&past)
	renewed, err := svc.CRL(t.Context(), revocationtest.OperationalID)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Number <= first.Number || !renewed.ThisUpdate.After(first.ThisUpdate) {
		t.Fatalf("renewed CRL %d at %s after %d at %s", renewed.Number, renewed.ThisUpdate, first.Number, first.ThisUpdate)
	}

	if _, err := svc.CRL(t.Context(), "ca-nope"); !errors.Is(err, revocation.ErrNoCRL) {
		t.Errorf("CRL(unknown CA) = %v, want ErrNoCRL", err)
	}
}

func parseCRL(t *testing.T, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

func TestReasons(t *testing.T) {
	for _, name := range revocation.ReasonNames() {
		code, err := revocation.ParseReason(name)
		if err != nil || revocation.ReasonName(code) != name {
			t.Errorf("ParseReason(%q) = %d, %v; name back %q", name, code, err, revocation.ReasonName(code))
		}
	}
	for in, want := range map[string]int{"": 0, "KEYCOMPROMISE": 1, "cACompromise": 2, "privilegeWithdrawn": 9} {
		if got, err := revocation.ParseReason(in); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"certificateHold", "removeFromCRL", "1", "stolen"} {
		if _, err := revocation.ParseReason(bad); err == nil {
			t.Errorf("ParseReason(%q) succeeded", bad)
		}
	}
}
