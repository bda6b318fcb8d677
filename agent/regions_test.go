package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/muster-iot/muster/agent"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

// TestRehomeCommand: the rehome command changes the agent's home, which is
// saved with the credentials and survives a restart; with Regions set the
// agent then talks to the new home; a malformed one changes nothing.
func TestRehomeCommand(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	var dir string
	a := newAgent(t, n, dev, func(c *agent.Config) { dir = c.Dir })
	ctx := context.Background()
	if _, err := a.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	topic := "devices/" + dev.ID + "/commands/" + agent.RehomeCommand
	if _, handled, err := a.HandleCommand(ctx, topic, []byte(`{"region":`)); err == nil || !handled {
		t.Fatalf("malformed rehome: handled %v, %v", handled, err)
	}
	if _, handled, err := a.HandleCommand(ctx, topic, []byte(`{}`)); err == nil || !handled {
		t.Fatalf("rehome without a region: handled %v, %v", handled, err)
	}
	if h := a.Home(); h.Region != "eu-test" {
		t.Fatalf("a refused rehome changed the home: %+v", h)
	}
	payload := []byte(`{"region":"ap","provisionUrl":"https://ap.example:9443","mqttUrl":"mqtts://ap.example:8883"}`)
	if _, handled, err := a.HandleCommand(ctx, topic, payload); err != nil || !handled {
		t.Fatalf("rehome: handled %v, %v", handled, err)
	}
	want := agent.Home{Region: "ap", ProvisionURL: "https://ap.example:9443", MQTTURL: "mqtts://ap.example:8883"}
	if h := a.Home(); h != want {
		t.Fatalf("home after rehome = %+v", h)
	}
	// The command is retained: one older than the current home is
	// ignored, a newer one applies.
	stale := []byte(`{"region":"us","provisionUrl":"https://us.example:9443","mqttUrl":"mqtts://us.example:8883","movedAt":"` +
		time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}`)
	if _, handled, err := a.HandleCommand(ctx, topic, stale); err != nil || !handled || a.Home() != want {
		t.Fatalf("a stale rehome moved the device: %+v (%v)", a.Home(), err)
	}
	newer := []byte(`{"region":"us","provisionUrl":"https://us.example:9443","mqttUrl":"mqtts://us.example:8883","movedAt":"` +
		time.Now().Add(time.Minute).UTC().Format(time.RFC3339) + `"}`)
	if _, _, err := a.HandleCommand(ctx, topic, newer); err != nil || a.Home().Region != "us" {
		t.Fatalf("a newer rehome: %+v (%v)", a.Home(), err)
	}
	want = a.Home()
	// A restarted agent reads the home back from its directory.
	b, err := agent.New(agent.Config{Server: "https://unused.example", Dir: dir, Regions: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(); err != nil {
		t.Fatal(err)
	}
	if h := b.Home(); h != want {
		t.Fatalf("home after a restart = %+v", h)
	}
}
