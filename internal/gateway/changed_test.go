package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/notify"
)

// TestDeviceChangedReachesLiveSessions: a suspension the change feed
// cannot show (its updated_at lies an hour back, as a transaction that
// committed late or a node with a slow clock would leave it; decision
// 0010) is enforced as soon as the gateway is told the device changed.
func TestDeviceChangedReachesLiveSessions(t *testing.T) {
	h := newHarness(t)
	d, cred := h.device(fleet.StateActive)
	c := h.mustConnect(cred.TLS(), d.ID)

	suspendUnseen(t, h, d.ID)
	// Several enforcement passes (every 100 ms here) go by without it.
	time.Sleep(500 * time.Millisecond)
	if closed(c)() {
		t.Fatal("the poll saw the late change: the test proves nothing")
	}
	h.gw.DeviceChanged(d.ID)
	within(t, "disconnect once told of the suspension", closed(c))
}

// TestDeviceChangedAllRereadsLiveSessions: notify.All (a bulk change, or
// a reconnection to the notification feed) re-reads every live session's
// device.
func TestDeviceChangedAllRereadsLiveSessions(t *testing.T) {
	h := newHarness(t)
	d, cred := h.device(fleet.StateActive)
	c := h.mustConnect(cred.TLS(), d.ID)
	suspendUnseen(t, h, d.ID)
	h.gw.DeviceChanged(notify.All)
	within(t, "disconnect after re-reading every device", closed(c))
}

// suspendUnseen suspends a device with an updated_at an hour back, where
// the gateway's poll of the change feed does not look.
func suspendUnseen(t *testing.T, h *harness, id string) {
	t.Helper()
	q := "UPDATE devices SET state = ?, version = version + 1, updated_at = ? WHERE id = ?"
	if h.st.Backend() == "postgres" {
		q = "UPDATE devices SET state = $1, version = version + 1, updated_at = $2 WHERE id = $3"
	}
	if _, err := h.st.DB().ExecContext(context.Background(), q, string(fleet.StateSuspended), time.Now().Add(-time.Hour).UTC(), id); err != nil {
		t.Fatal(err)
	}
}
