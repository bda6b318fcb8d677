package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// recordingObserver keeps what the gateway hands the detector.
type recordingObserver struct {
	mu      sync.Mutex
	windows []store.MeterWindow
	reports []*Report
}

func (o *recordingObserver) ObserveWindow(w store.MeterWindow) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.windows = append(o.windows, w)
}

func (o *recordingObserver) ObserveReport(_ string, _ time.Time, r *Report) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports = append(o.reports, r)
}

// TestObserver: valid reports reach the observer as they arrive, bad ones
// never; metering windows reach it once they closed.
func TestObserver(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) { c.Observer, c.MeterWindow = obs, time.Second })
	ctx := context.Background()
	d, cred := h.device(fleet.StateActive)
	c := h.mustConnect(cred.TLS(), d.ID)
	report := func(payload string) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, _ = c.Publish(ctx, &paho.Publish{Topic: "devices/" + d.ID + "/metrics", QoS: 1, Payload: []byte(payload)})
	}
	report(`{"version":1,"destinationIps":["203.0.113.66"],"firmware":[{"component":"main","version":"2.3.1"}]}`)
	report(`{"version":1,"firmware":[{"component":"main","version":"2.3.1 beta"}]}`)
	report(`{"version":1,"firmware":[{"component":"main","version":""}]}`)
	obs.mu.Lock()
	got := len(obs.reports)
	var first *Report
	if got > 0 {
		first = obs.reports[0]
	}
	obs.mu.Unlock()
	if got != 1 || first.Firmware[0].Version != "2.3.1" || first.DestinationIPs[0] != "203.0.113.66" {
		t.Fatalf("observer saw %d reports (%+v), want only the valid one", got, first)
	}
	// The window closes a second after it began; the next collection hands
	// it over (once it is no longer written to).
	eventually(t, "window observed", 5*time.Second, func() bool {
		h.gw.saveMeters(ctx)
		obs.mu.Lock()
		defer obs.mu.Unlock()
		for _, w := range obs.windows {
			if w.DeviceID == d.ID && w.Connects == 1 && w.Reports == 3 && w.BadReports == 2 {
				return true
			}
		}
		return false
	})
}

// TestBroadcastToOperators: alerts go to fleet/muster-operators/alerts/…,
// which only members of that group may subscribe to.
func TestBroadcastToOperators(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	op, opCred := h.device(fleet.StateActive, "muster-operators")
	dev, devCred := h.device(fleet.StateActive, "sensors")
	oc := h.mustConnect(opCred.TLS(), op.ID)
	dc := h.mustConnect(devCred.TLS(), dev.ID)
	got := make(chan string, 4)
	oc.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		got <- pr.Packet.Topic + " " + string(pr.Packet.Payload)
		return true, nil
	})
	if !h.subscribe(oc, "fleet/muster-operators/alerts/#") {
		t.Fatal("an operator console may not subscribe to alerts")
	}
	if h.subscribe(dc, "fleet/muster-operators/alerts/#") {
		t.Fatal("a device outside the group subscribed to alerts")
	}
	if acked, delivered := h.publish(oc, "fleet/muster-operators/alerts/high/x"); acked || delivered {
		t.Fatal("an operator console published on the alert topic")
	}
	if err := h.gw.Broadcast(ctx, "muster-operators", "alerts/high/"+dev.ID, []byte(`{"event":"alert.opened"}`), false); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if !strings.HasPrefix(msg, "fleet/muster-operators/alerts/high/"+dev.ID+" ") {
			t.Fatalf("operator got %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the operator console never got the alert")
	}
	for _, bad := range [][2]string{{"muster-operators", "alerts/#"}, {"a/b", "alerts"}, {"muster-operators", ""}, {"+", "x"}} {
		if err := h.gw.Broadcast(ctx, bad[0], bad[1], nil, false); !errors.Is(err, ErrBadCommand) {
			t.Errorf("Broadcast(%q, %q) = %v, want ErrBadCommand", bad[0], bad[1], err)
		}
	}
}
