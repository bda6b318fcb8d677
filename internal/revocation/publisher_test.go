package revocation_test

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
	"github.com/muster-iot/muster/internal/store"
)

// publications counts the CRLs a node signed and stored, from its log.
type publications struct{ n atomic.Int64 }

func (p *publications) Enabled(context.Context, slog.Level) bool { return true }
func (p *publications) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "revocation: published CRL" {
		p.n.Add(1)
	}
	return nil
}
func (p *publications) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *publications) WithGroup(string) slog.Handler      { return p }

// leasedNode is a node's revocation service publishing CRLs through the
// CRL lease, on its own connection pool to the shared database.
type leasedNode struct {
	svc  *revocation.Service
	st   *store.Store
	pubs *publications
	stop context.CancelFunc
	done chan error
}

func startLeasedNode(t *testing.T, f *fixture, name string, ttl time.Duration) *leasedNode {
	t.Helper()
	// Not OpenStore: a test closes it early to kill the node.
	st, err := store.Open(context.Background(), store.Config{URL: f.url})
	if err != nil {
		t.Fatal(err)
	}
	n := &leasedNode{st: st, pubs: &publications{}, done: make(chan error, 1)}
	t.Cleanup(func() {
		if n.st != nil {
			n.st.Close()
		}
	})
	leases, err := lease.New(lease.Config{Store: st, Node: name, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	n.svc, err = revocation.New(revocation.Config{Store: st, Issuers: f.pki, Leases: leases, Logger: slog.New(n.pubs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { n.done <- n.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-n.done
	})
	eventually(t, "node "+name+" loads", func() bool { return n.svc.Ready() == nil })
	return n
}

// listed reports whether the stored CRL of the manufacturing CA lists serial.
func listed(t *testing.T, f *fixture, serial *big.Int) bool {
	t.Helper()
	crl, err := f.st.LatestCRL(t.Context(), revocationtest.ManufacturingID)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range parseCRL(t, crl.DER, f.pki.Manufacturing.Certificate()).RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// With several nodes, one publishes CRLs: the holder of the CRL lease. A
// revocation made on another node is published by the holder, and when the
// holder dies without releasing the lease, another node takes publication
// over within a lease period.
func TestCRLPublishedByLeaseHolderOnly(t *testing.T) {
	f := newFixture(t)
	// Long enough that a loaded machine does not delay a renewal past it.
	const ttl = time.Second
	a := startLeasedNode(t, f, "a", ttl)
	eventually(t, "node a publishes the first CRLs", func() bool {
		_, err := f.st.LatestCRL(t.Context(), revocationtest.ManufacturingID)
		return err == nil
	})
	b := startLeasedNode(t, f, "b", ttl)
	held, err := f.st.GetLease(t.Context(), revocation.CRLLease)
	if err != nil || held.Holder != "a" {
		t.Fatalf("CRL lease = %+v, %v; want held by a", held, err)
	}

	// A revocation through b is published by a, the publisher.
	d := f.pki.Device(t, f.st)
	first := f.pki.BirthCredential(t, f.st, d).Certificate.SerialNumber
	if err := b.svc.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, first.Text(16), revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the publisher lists the revocation made through b", func() bool { return listed(t, f, first) })
	// b serves what a stored.
	crl, err := b.svc.CRL(t.Context(), revocationtest.ManufacturingID)
	if err != nil || len(parseCRL(t, crl.DER, f.pki.Manufacturing.Certificate()).RevokedCertificateEntries) != 1 {
		t.Fatalf("b's CRL = %+v, %v; want the one listing the revocation", crl, err)
	}
	// Give b's refresh loop time to see the revocation too: it must not
	// publish anything of its own.
	time.Sleep(3 * revocation.DefaultRefreshInterval)
	if got := b.pubs.n.Load(); got != 0 {
		t.Fatalf("node b, which does not hold the CRL lease, published %d CRLs", got)
	}
	if a.pubs.n.Load() == 0 {
		t.Fatal("node a logged no publication")
	}

	// a dies: its database connections go, and it never releases the lease.
	a.st.Close()
	a.st = nil
	a.stop()
	<-a.done
	a.done <- nil // for the cleanup

	second := f.pki.OperationalCredential(t, f.st, d).Certificate.SerialNumber
	if _, err := b.svc.RevokeDeviceCertificates(t.Context(), d.ID, revocation.ReasonCessationOfOperation, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	// The lease expires a TTL after a's last renewal; b tries every third
	// of it. Allow a few TTLs for a loaded machine.
	start := time.Now()
	for {
		crl, err := f.st.LatestCRL(t.Context(), revocationtest.OperationalID)
		if err != nil {
			t.Fatal(err)
		}
		entries := parseCRL(t, crl.DER, f.pki.Operational.Certificate()).RevokedCertificateEntries
		if len(entries) == 1 && entries[0].SerialNumber.Cmp(second) == 0 {
			break
		}
		if time.Since(start) > 5*ttl {
			t.Fatalf("node b did not publish the CRL within %v of a's death", 5*ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("node b published the CRL %v after the revocation (lease %v)", took, ttl)
	// It logs the publication just after storing it.
	eventually(t, "node b logs its publication", func() bool { return b.pubs.n.Load() > 0 })
	now, err := f.st.GetLease(t.Context(), revocation.CRLLease)
	if err != nil || now.Holder != "b" || now.Token <= held.Token {
		t.Fatalf("CRL lease after a died = %+v, %v; want b's, token above %d", now, err, held.Token)
	}
}

// A node that stops releases the CRL lease, so another takes it at once.
func TestCRLLeaseReleasedOnStop(t *testing.T) {
	f := newFixture(t)
	// A lease far longer than the test: only the release frees it.
	const ttl = time.Minute
	a := startLeasedNode(t, f, "a", ttl)
	eventually(t, "node a takes the CRL lease", func() bool {
		l, err := f.st.GetLease(t.Context(), revocation.CRLLease)
		return err == nil && l.Holder == "a"
	})
	b := startLeasedNode(t, f, "b", ttl)
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.done <- nil
	// b tries again every third of the TTL; a revocation through b wakes
	// its publisher sooner.
	d := f.pki.Device(t, f.st)
	serial := f.pki.BirthCredential(t, f.st, d).Certificate.SerialNumber
	if err := b.svc.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, serial.Text(16), revocation.ReasonSuperseded, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node b publishes after a released the lease", func() bool { return listed(t, f, serial) })
	if l, err := f.st.GetLease(t.Context(), revocation.CRLLease); err != nil || l.Holder != "b" {
		t.Fatalf("CRL lease = %+v, %v; want held by b", l, err)
	}
}
