package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/gateway"
)

// commandLog is the harness's DeviceCommander: it records what it was asked
// to send. The gateway's own Send and Rotate are tested against a real
// broker in internal/gateway.
type commandLog struct {
	mu   sync.Mutex
	sent []gateway.Command
}

func (l *commandLog) Send(_ context.Context, c gateway.Command) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, c)
	return false, nil
}

func (l *commandLog) Rotate(ctx context.Context, deviceID, reason string) (bool, error) {
	return l.Send(ctx, gateway.Command{DeviceID: deviceID, Topic: gateway.RotateCommand, Payload: []byte(reason), Retain: true})
}

func (l *commandLog) last() (gateway.Command, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sent) == 0 {
		return gateway.Command{}, 0
	}
	return l.sent[len(l.sent)-1], len(l.sent)
}

func TestSendCommand(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	path := "/v1/devices/" + d.ID + "/commands"

	got := call[*CommandSent](h, request{caller: "operator", method: "POST", path: path,
		body: map[string]any{"topic": "config/network", "payload": `{"dhcp":true}`, "retain": true}}, http.StatusAccepted)
	if want := "devices/" + d.ID + "/commands/config/network"; got.DeviceID != d.ID || got.Topic != want {
		t.Errorf("answer = %+v, want device %s topic %s", got, d.ID, want)
	}
	c, n := h.sent.last()
	if c.DeviceID != d.ID || c.Topic != "config/network" || string(c.Payload) != `{"dhcp":true}` || !c.Retain {
		t.Errorf("sent %+v", c)
	}
	events := call[list[fleet.Event]](h, request{caller: "admin", method: "GET", path: "/v1/devices/" + d.ID + "/history"}, http.StatusOK)
	if e := events.Items[len(events.Items)-1]; e.Type != gateway.EventCommandSent || e.Actor != "operator/operator-token" ||
		!strings.Contains(string(e.Data), "commands/config/network") || strings.Contains(string(e.Data), "dhcp") {
		t.Errorf("last history event = %s by %s: %s", e.Type, e.Actor, e.Data)
	}

	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"empty topic", map[string]any{"payload": "x"}, "topic"},
		{"wildcard +", map[string]any{"topic": "a/+/b"}, "topic"},
		{"wildcard #", map[string]any{"topic": "#"}, "topic"},
		{"escape", map[string]any{"topic": "../../other/commands/x"}, "topic"},
		{"oversize", map[string]any{"topic": "big", "payload": strings.Repeat("x", gateway.MaxCommandBytes+1)}, "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.with(t).do(request{caller: "admin", method: "POST", path: path, body: tc.body})
			if e := errorOf(t, w); w.Code != http.StatusBadRequest || e.Code != codeValidationFailed || e.Field != tc.field {
				t.Errorf("%d %s, want 400 on %s", w.Code, w.Body, tc.field)
			}
		})
	}
	if _, m := h.sent.last(); m != n {
		t.Errorf("bad commands reached the commander: %d sends, want %d", m, n)
	}

	// Unknown devices are 404, and so are another factory's devices for a
	// scoped caller, who may not send commands at all.
	w := h.do(request{caller: "admin", method: "POST", path: "/v1/devices/dev_nope/commands", body: map[string]any{"topic": "x"}})
	if e := errorOf(t, w); w.Code != http.StatusNotFound || e.Code != codeNotFound {
		t.Errorf("unknown device: %d %s, want 404", w.Code, w.Body)
	}
	other := h.newDevice(factory2)
	w = h.do(request{caller: "manufacturer", method: "POST", path: "/v1/devices/" + other.ID + "/commands", body: map[string]any{"topic": "x"}})
	if w.Code != http.StatusForbidden {
		t.Errorf("manufacturer: %d %s, want 403", w.Code, w.Body)
	}
}

func TestRotateDevice(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	got := call[*CommandSent](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/rotate",
		body: map[string]any{"reason": "key compromise drill"}}, http.StatusAccepted)
	if got.Topic != gateway.CommandTopic(d.ID, gateway.RotateCommand) {
		t.Errorf("topic = %s", got.Topic)
	}
	if c, _ := h.sent.last(); c.DeviceID != d.ID || c.Topic != gateway.RotateCommand || string(c.Payload) != "key compromise drill" {
		t.Errorf("sent %+v", c)
	}
}

// TestCommandsWithoutGateway: a server without a commander answers 503,
// after the device lookup.
func TestCommandsWithoutGateway(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	h.srv = New(Config{Store: h.st, CAs: h.cas})
	for _, rq := range []request{
		{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/commands", body: map[string]any{"topic": "reboot"}},
		{caller: "operator", method: "POST", path: "/v1/devices/" + d.ID + "/rotate", body: map[string]any{}},
	} {
		if w := h.do(rq); w.Code != http.StatusServiceUnavailable || errorOf(t, w).Code != codeUnavailable {
			t.Errorf("%s: %d %s, want 503 unavailable", rq.path, w.Code, w.Body)
		}
	}
}
