package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/api"
	"github.com/muster-iot/muster/internal/gateway"
)

// sentCommands is the API's DeviceCommander in these tests: it records
// what the real API asked the gateway to send (the gateway's own Send is
// tested against a real broker in internal/gateway).
type sentCommands struct {
	mu   sync.Mutex
	sent []gateway.Command
}

func (s *sentCommands) Send(_ context.Context, c gateway.Command) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, c)
	return true, nil
}

func (s *sentCommands) Rotate(ctx context.Context, id, reason string) (bool, error) {
	return s.Send(ctx, gateway.Command{DeviceID: id, Topic: gateway.RotateCommand, Payload: []byte(reason), Retain: true})
}

func TestDevicesSendAndRotate(t *testing.T) {
	isolateEnv(t)
	rec := &sentCommands{}
	dir, _ := startAPIStore(t, func(c *api.Config) { c.Commander = rec })
	cli(t, dir, "factories", "add", "acme", "--models", "sensor-x", "--serial-pattern", "SN-[0-9]{4}")
	d := cliJSON[client.Device](t, dir, "devices", "create", "--factory", "acme", "--model", "sensor-x", "--serial", "SN-0001")

	out := cli(t, dir, "devices", "send", d.ID, "--topic", "reboot", "--payload", `{"delay":5}`)
	if !strings.Contains(out, "devices/"+d.ID+"/commands/reboot") || !strings.Contains(out, "true") {
		t.Errorf("send printed:\n%s", out)
	}
	payload := filepath.Join(t.TempDir(), "net.json")
	writeFile(t, payload, `{"dhcp":true}`)
	sent := cliJSON[client.CommandSent](t, dir, "devices", "send", d.ID, "--topic", "config/network", "--payload-file", payload, "--retain")
	if sent.Topic != "devices/"+d.ID+"/commands/config/network" || !sent.Connected {
		t.Errorf("send -o json: %+v", sent)
	}
	cli(t, dir, "devices", "rotate", d.ID, "--reason", "drill")

	rec.mu.Lock()
	got := rec.sent
	rec.mu.Unlock()
	want := []gateway.Command{
		{DeviceID: d.ID, Topic: "reboot", Payload: []byte(`{"delay":5}`)},
		{DeviceID: d.ID, Topic: "config/network", Payload: []byte(`{"dhcp":true}`), Retain: true},
		{DeviceID: d.ID, Topic: gateway.RotateCommand, Payload: []byte("drill"), Retain: true},
	}
	if len(got) != len(want) {
		t.Fatalf("sent %d commands, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].DeviceID != want[i].DeviceID || got[i].Topic != want[i].Topic || string(got[i].Payload) != string(want[i].Payload) || got[i].Retain != want[i].Retain {
			t.Errorf("command %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if h := cli(t, dir, "devices", "history", d.ID); !strings.Contains(h, gateway.EventCommandSent) {
		t.Errorf("history lacks %s:\n%s", gateway.EventCommandSent, h)
	}

	// Refusals come back with the server's reason.
	_, stderr, code := runCLI(t, "--data-dir", dir, "devices", "send", d.ID, "--topic", "a/#")
	if code == 0 || !strings.Contains(stderr, "topic") {
		t.Errorf("wildcard topic: exit %d, stderr %s", code, stderr)
	}
}

// TestDevicesSendWithoutGateway: a server without a gateway says so.
func TestDevicesSendWithoutGateway(t *testing.T) {
	isolateEnv(t)
	dir, _ := startAPIStore(t)
	cli(t, dir, "factories", "add", "acme", "--models", "sensor-x", "--serial-pattern", "SN-[0-9]{4}")
	d := cliJSON[client.Device](t, dir, "devices", "create", "--factory", "acme", "--model", "sensor-x", "--serial", "SN-0001")
	_, stderr, code := runCLI(t, "--data-dir", dir, "devices", "rotate", d.ID)
	if code == 0 || !strings.Contains(stderr, "gateway") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}
