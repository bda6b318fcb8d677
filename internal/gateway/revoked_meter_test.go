package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

// TestRevokedAttemptsMetered: a handshake refused because the certificate
// is revoked is counted as a revoked attempt of the device it names (the
// audit's revoked-connecting check reads it); one refused for another
// reason (a foreign CA) is not.
func TestRevokedAttemptsMetered(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	revoked, revokedCred := h.device(fleet.StateActive)
	if _, err := h.rev.RevokeDeviceCertificates(ctx, revoked.ID, 1, "test"); err != nil {
		t.Fatal(err)
	}
	other, _ := h.device(fleet.StateActive)
	foreignCred := revocationtest.NewPKI(t, "f1").OperationalCredential(t, h.st, other)
	for _, c := range []struct {
		cred revocationtest.Credential
		id   string
	}{{revokedCred, revoked.ID}, {revokedCred, revoked.ID}, {foreignCred, other.ID}} {
		if _, err := h.connect(c.cred.TLS(), c.id); err == nil {
			t.Fatalf("%s connected", c.id)
		}
	}
	h.gw.saveMeters(ctx)
	windows := func(id string) (attempts, failures, revokedAttempts int64) {
		ws, err := h.st.DeviceMetrics(ctx, id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			attempts, failures, revokedAttempts = attempts+w.Attempts, failures+w.AuthFailures, revokedAttempts+w.RevokedAttempts
		}
		return
	}
	if a, f, r := windows(revoked.ID); a != 2 || f != 2 || r != 2 {
		t.Errorf("revoked device: attempts %d, failures %d, revoked %d; want 2, 2, 2", a, f, r)
	}
	if a, f, r := windows(other.ID); a != 1 || f != 1 || r != 0 {
		t.Errorf("foreign certificate: attempts %d, failures %d, revoked %d; want 1, 1, 0", a, f, r)
	}
}
