package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/pki"
)

// Provisioner answers provisioning requests that birth identities publish
// on $muster/provision/{template}/request; the provisioning pipeline's
// MQTT adapter implements it. id is the verified birth identity, chain
// included. answer is the JSON sent back on .../accepted when accepted is
// true, else on .../rejected.
type Provisioner interface {
	ProvisionMQTT(ctx context.Context, id pki.Identity, template string, request []byte) (answer []byte, accepted bool)
}

// provisionTimeout bounds one provisioning request, hooks and approval
// included; a device retries after it.
const provisionTimeout = 30 * time.Second

// provisionTemplate returns the template of a provisioning request topic.
func provisionTemplate(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, provisionRoot+"/")
	if !ok {
		return "", false
	}
	template, leaf, ok := strings.Cut(rest, "/")
	return template, ok && leaf == "request" && template != "" && !strings.Contains(template, "/")
}

// provision answers a birth identity's request in the background and
// writes the answer to that client alone: responses never go through
// topic routing, so no other client can receive them, whatever it
// subscribed to. One request per session is in flight at a time.
func (g *Gateway) provision(cl *mqtt.Client, dc *deviceConn, template string, request []byte) {
	if !dc.provisioning.CompareAndSwap(false, true) {
		g.answerProvision(cl, template, rejection("a provisioning request from this session is in flight; wait for its answer"), false)
		return
	}
	g.background.Go(func() {
		defer dc.provisioning.Store(false)
		if g.provisioner == nil {
			g.answerProvision(cl, template, rejection("provisioning over MQTT is not enabled on this node; use EST"), false)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), provisionTimeout)
		defer cancel()
		answer, accepted := g.provisioner.ProvisionMQTT(ctx, dc.identity, template, request)
		g.answerProvision(cl, template, answer, accepted)
	})
}

// answerProvision writes an answer straight to the client, at QoS 0.
func (g *Gateway) answerProvision(cl *mqtt.Client, template string, answer []byte, accepted bool) {
	leaf := "rejected"
	if accepted {
		leaf = "accepted"
	}
	if cl.Closed() {
		return // the device asks again after reconnecting
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   provisionRoot + "/" + template + "/" + leaf,
		Payload:     answer,
	}
	if err := cl.WritePacket(pk); err != nil {
		g.log.Info("gateway: provisioning answer not delivered", "client", cl.ID, "err", err)
	}
}

// rejection is a rejected answer with a reason.
func rejection(reason string) []byte {
	b, _ := json.Marshal(reportRejection{Reason: reason})
	return b
}
