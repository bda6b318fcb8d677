package gateway

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
)

// authHook ties the broker to the gateway: it admits sessions by the
// identity the handshake proved, judges every publish, subscribe and
// delivery by the topic policy, and keeps the session registry that live
// enforcement walks.
type authHook struct {
	mqtt.HookBase
	g *Gateway
	// packets is whether every packet is metered (bytes, messages,
	// topics); off only to measure the bare broker.
	packets bool
}

// ID implements mqtt.Hook.
func (h *authHook) ID() string { return "muster-gateway" }

// Provides implements mqtt.Hook.
func (h *authHook) Provides(b byte) bool {
	if b == mqtt.OnPacketRead || b == mqtt.OnPacketSent {
		return h.packets
	}
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnPublish,
	}, []byte{b})
}

// connOf returns the device connection of a broker client, or nil for
// clients that did not come through the TLS listener (the broker's inline
// client).
func connOf(cl *mqtt.Client) *deviceConn {
	dc, _ := cl.Net.Conn.(*deviceConn)
	return dc
}

// OnConnect implements mqtt.Hook: a client is admitted when its client id
// and device state fit the certificate it proved, and its will, if any, is
// on a topic it may publish to. Admission happens here rather than in
// OnConnectAuthenticate so that a refused device learns why in the CONNACK
// (refusalCode), instead of the broker's one "bad user name or password".
func (h *authHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	dc := connOf(cl)
	if dc == nil {
		return nil // OnConnectAuthenticate refuses it
	}
	ctx := context.Background()
	p, access, err := admit(ctx, h.g.states, dc.identity, cl.ID)
	if err == nil && atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !Allowed(p, cl.Properties.Will.TopicName, Publish) {
		err = errWillTopic
	}
	if err != nil {
		code := refusalCode(err, access.State, cl.Properties.ProtocolVersion)
		h.g.log.InfoContext(ctx, "gateway: session refused", "client", cl.ID, "remote", cl.Net.Remote, "reason_code", code.Code, "err", err)
		h.g.meter.refusedSession(dc.meterID())
		if serr := h.g.broker.SendConnack(cl, code, false, nil); serr != nil {
			return serr
		}
		return err
	}
	dc.admitted, dc.connectedAt = access, time.Now()
	dc.principal.Store(&p)
	return nil
}

// OnConnectAuthenticate implements mqtt.Hook: only clients OnConnect
// admitted through the device listeners get a session.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	dc := connOf(cl)
	return dc != nil && dc.principal.Load() != nil
}

// stateRefusal is how the gateway refuses, or cuts off, a device whose
// state allows no session: banned when it has left the fleet for good
// (fleet.Gone), not authorized when its state may change back.
func stateRefusal(state fleet.State) packets.Code {
	if fleet.Gone(state) {
		return packets.ErrBanned
	}
	return packets.ErrNotAuthorized
}

// refusalCode is the CONNACK reason a refused device gets: it tells the
// device whether trying again can help, which only the device's own
// certificate holder learns. A device that is gone for good
// (decommissioned, disposed, refurbished) is banned (0x8A); one whose
// state may change back (suspended, pending, ...) or whose will topic is
// not allowed is not authorized (0x87); a wrong client id is 0x85; a
// failed device lookup is the server's fault (0x88), so the device retries.
// MQTT 3.1.1 has fewer codes: banned and not authorized are both 5.
func refusalCode(err error, state fleet.State, protocol byte) packets.Code {
	code := packets.ErrServerUnavailable
	switch {
	case errors.Is(err, ErrDeviceState):
		code = stateRefusal(state)
	case errors.Is(err, errWillTopic), errors.Is(err, pki.ErrUntrusted):
		code = packets.ErrNotAuthorized
	case errors.Is(err, ErrClientID), errors.Is(err, ErrUnsafeID):
		code = packets.ErrClientIdentifierNotValid
	}
	if protocol < 5 {
		if code == packets.ErrBanned || code == packets.ErrNotAuthorized {
			return packets.Err3NotAuthorized
		}
		return packets.V5CodesToV3[code]
	}
	return code
}

// OnACLCheck implements mqtt.Hook. The broker asks it for publishes
// (write), subscriptions and each delivery (read), so a principal changed
// by enforcement applies to subscriptions made before the change.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	dc := connOf(cl)
	if dc == nil {
		return cl.Net.Inline // the gateway's own client publishes commands
	}
	if !write {
		// Subscriptions and deliveries; refused subscriptions are
		// metered in OnSubscribed, refused deliveries are no fault of
		// the device.
		return Allowed(dc.policy(), topic, Subscribe)
	}
	if !Allowed(dc.policy(), topic, Publish) {
		h.g.meter.denied(dc.meterID())
		return false
	}
	return true
}

// OnSubscribed implements mqtt.Hook: refused subscriptions are metered.
func (h *authHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, reasonCodes []byte) {
	dc := connOf(cl)
	if dc == nil {
		return
	}
	for _, code := range reasonCodes {
		if code == packets.ErrNotAuthorized.Code {
			h.g.meter.denied(dc.meterID())
		}
	}
}

// OnPacketRead implements mqtt.Hook: messages from devices are metered
// with their topics. Bytes are metered by the connection itself.
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if dc := connOf(cl); dc != nil && pk.FixedHeader.Type == packets.Publish {
		h.g.meter.published(dc.meterID(), pk.TopicName)
	}
	return pk, nil
}

// OnPacketSent implements mqtt.Hook: messages to devices are metered.
func (h *authHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if dc := connOf(cl); dc != nil && pk.FixedHeader.Type == packets.Publish {
		h.g.meter.delivered(dc.meterID())
	}
}

// OnSessionEstablish implements mqtt.Hook. It runs just before the broker
// hands an admitted client the session of its client id, so a live session
// still holding that id is about to be taken over: it is counted here,
// where no disconnect can race the count.
func (h *authHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	existing, ok := h.g.broker.Clients.Get(cl.ID)
	takeover := ok && existing != cl && !existing.Closed()
	if takeover {
		h.g.sessions.takeovers.Add(1)
		h.g.log.Info("gateway: session taken over", "client", cl.ID, "old_remote", existing.Net.Remote, "new_remote", cl.Net.Remote)
	}
	if dc := connOf(cl); dc != nil {
		h.g.meter.connected(dc.meterID(), takeover)
	}
}

// OnSessionEstablished implements mqtt.Hook: the session joins the
// registry enforcement walks, its presence is recorded, and a provisioned
// device becomes active.
func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	dc := connOf(cl)
	if dc == nil {
		return
	}
	h.g.sessions.add(cl, dc)
	if ps, ok := dc.presence(dc.connectedAt, true); ok {
		h.g.presence.note(ps)
	}
	if dc.identity.Kind == pki.IdentityOperational {
		// Enforcement passes skip sessions not registered yet: a change
		// they saw between admission and now would be lost without this.
		h.g.states.confirm(dc.admitted)
	}
	if dc.admitted.State == fleet.StateProvisioned && h.g.updater != nil {
		h.g.background.Go(func() { h.g.activate(context.Background(), dc.identity.DeviceID) })
	}
}

// OnDisconnect implements mqtt.Hook. A session taken over leaves the
// device's presence to the session that replaced it.
func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	released := h.g.sessions.remove(cl)
	dc := connOf(cl)
	if dc == nil {
		return
	}
	var enforced string
	if why := dc.enforced.Load(); why != nil {
		enforced = *why
	}
	h.g.meter.disconnected(dc.meterID(), disconnectReason(cl, err, enforced))
	h.g.kickMeters()
	if !released {
		return
	}
	if ps, ok := dc.presence(time.Now(), false); ok {
		h.g.presence.note(ps)
	}
}
