package revocation_test

import (
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/revocation"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

// TestChangedRefreshesAtOnce: a node told that another revoked something
// applies it without waiting for its periodic refresh (here an hour).
func TestChangedRefreshesAtOnce(t *testing.T) {
	f := newFixture(t)
	nodeA := f.node(t, f.st)
	nodeB := f.node(t, revocationtest.OpenStore(t, f.url), func(c *revocation.Config) {
		c.RefreshInterval = time.Hour
		c.MaxStaleness = -1
	})
	d := f.pki.Device(t, f.st)
	birth := f.pki.BirthCredential(t, f.st, d)
	mfg := f.pki.Manufacturing.Certificate()
	if err := nodeA.RevokeCertificate(t.Context(), revocationtest.ManufacturingID, birth.Certificate.SerialNumber.Text(16),
		revocation.ReasonKeyCompromise, "operator/ops"); err != nil {
		t.Fatal(err)
	}
	if isRevoked(t, nodeB, mfg, birth.Certificate.SerialNumber) {
		t.Fatal("node B applied the revocation before being told: the test proves nothing")
	}
	nodeB.Changed()
	eventually(t, "node B applies the revocation once told", func() bool {
		return isRevoked(t, nodeB, mfg, birth.Certificate.SerialNumber)
	})
}
