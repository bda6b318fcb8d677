package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// testCA is a CA row; the store does not parse certificates, so any text
// stands in for the PEM.
func testCA(purpose, factory string) *CA {
	return &CA{Purpose: purpose, Factory: factory, KeyLabel: purpose + "-key", CertPEM: "PEM of " + purpose + " " + factory,
		SubjectKeyID: "abcd", NotAfter: time.Now().Add(24 * time.Hour)}
}

func TestFactories(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		f := &Factory{Name: "acme", Models: []string{"m1", "m2"}, SerialPattern: "SN-[0-9]+", CAMode: "managed"}
		ca := testCA("manufacturing", "acme")
		if err := s.CreateFactory(ctx, NewFactory{Factory: f, CA: ca}, "admin/root"); err != nil {
			t.Fatalf("CreateFactory: %v", err)
		}
		if f.CreatedBy != "admin/root" || f.CreatedAt.IsZero() || !strings.HasPrefix(ca.ID, "ca_") || ca.Status != CAActive {
			t.Fatalf("CreateFactory left %+v and CA %+v", f, ca)
		}
		got, err := s.GetFactory(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "stored factory", *got, *f)
		if _, err := s.GetFactory(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetFactory(unknown) = %v, want ErrNotFound", err)
		}

		// A second registration of the name writes nothing, its CA included.
		again := &Factory{Name: "acme", Models: []string{"x"}, SerialPattern: ".*", CAMode: "managed"}
		if err := s.CreateFactory(ctx, NewFactory{Factory: again, CA: testCA("manufacturing", "acme2")}, "admin/root"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("CreateFactory(taken name) = %v, want ErrDuplicate", err)
		}
		mustEqual(t, "CAs", countAll(t, s, "cas"), 1)

		if err := s.CreateFactory(ctx, NewFactory{Factory: &Factory{Name: "bolt", Models: []string{"b"}, SerialPattern: "B.*", CAMode: "managed"}}, "operator/ops"); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListFactories(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "listed", []string{list[0].Name, list[1].Name}, []string{"acme", "bolt"})
		mustEqual(t, "models", list[0].Models, []string{"m1", "m2"})

		evs := mustVerify(t, s, fleet.FleetSubject, 2)
		var audit map[string]any
		_ = json.Unmarshal(evs[0].Data, &audit)
		if evs[0].Type != EventFactoryCreated || evs[0].Actor != "admin/root" || audit["caId"] != ca.ID || audit["name"] != "acme" {
			t.Errorf("audit event = %s %s %s", evs[0].Type, evs[0].Actor, evs[0].Data)
		}
	})
}

func TestFactoryChallenges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		challenge := func(nonce, factory string, ttl time.Duration) {
			t.Helper()
			c := &Challenge{Nonce: nonce, Factory: factory, ExpiresAt: time.Now().Add(ttl)}
			if err := s.CreateChallenge(ctx, c, "admin/root"); err != nil {
				t.Fatalf("CreateChallenge: %v", err)
			}
			if c.CreatedBy != "admin/root" || c.CreatedAt.IsZero() {
				t.Fatalf("CreateChallenge left %+v", c)
			}
		}
		external := func(name, nonce string) error {
			return s.CreateFactory(ctx, NewFactory{
				Factory: &Factory{Name: name, Models: []string{"m"}, SerialPattern: ".*", CAMode: "external"},
				CA:      testCA("external", name), Nonce: nonce,
			}, "admin/root")
		}
		challenge("n-good", "maker", time.Hour)
		challenge("n-old", "maker", -time.Minute)
		challenge("n-other", "elsewhere", time.Hour)
		if err := s.CreateChallenge(ctx, &Challenge{Nonce: "n-good", Factory: "maker", ExpiresAt: time.Now().Add(time.Hour)}, "x"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("CreateChallenge(taken nonce) = %v, want ErrDuplicate", err)
		}

		for _, c := range []struct{ nonce, reason string }{
			{"n-unknown", "unknown"},
			{"n-old", "expired"},
			{"n-other", `issued for factory "elsewhere"`},
		} {
			err := external("maker", c.nonce)
			var ce *ChallengeError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChallenge) || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("CreateFactory with nonce %s = %v, want a ChallengeError saying %q", c.nonce, err, c.reason)
			}
		}
		mustEqual(t, "factories after refused nonces", countAll(t, s, "factories"), 0)

		// A registration that fails for another reason leaves the nonce unused.
		if err := s.CreateFactory(ctx, NewFactory{Factory: &Factory{Name: "maker", Models: []string{"m"}, SerialPattern: ".*", CAMode: "managed"}}, "a"); err != nil {
			t.Fatal(err)
		}
		if err := external("maker", "n-good"); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("CreateFactory(taken name) = %v, want ErrDuplicate", err)
		}
		challenge("n-2", "maker2", time.Hour)
		if err := external("maker2", "n-2"); err != nil {
			t.Fatalf("CreateFactory(external): %v", err)
		}
		if err := external("maker3", "n-2"); !errors.Is(err, ErrChallenge) {
			t.Fatalf("reused nonce: %v, want ErrChallenge", err)
		}
		var usedAt any
		if err := s.DB().QueryRowContext(ctx, s.d.rebind("SELECT used_at FROM ca_challenges WHERE nonce = ?"), "n-good").Scan(&usedAt); err != nil || usedAt != nil {
			t.Errorf("nonce of the failed registration: used_at = %v (%v), want unused", usedAt, err)
		}
		cas, err := s.ListCAs(ctx, CAFilter{Purpose: "external"})
		if err != nil || len(cas) != 1 || cas[0].Factory != "maker2" || cas[0].KeyLabel != "external-key" {
			t.Fatalf("external CAs = %+v, %v", cas, err)
		}
	})
}
