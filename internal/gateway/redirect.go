package gateway

import (
	"context"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/pki"
)

// Redirector says where a device belongs when that is not this node:
// *region.Service implements it (the device's home region's MQTT URL when
// its home is another enabled region).
type Redirector interface {
	Redirect(ctx context.Context, deviceID string) (serverURL string, elsewhere bool, err error)
}

// errRedirected ends a connection the gateway sent elsewhere.
var errRedirected = errors.New("gateway: device redirected to its home region")

// redirectTimeout bounds the home lookup of one connection.
const redirectTimeout = 5 * time.Second

// redirectHook turns away operational sessions of devices whose home is
// another region, before they are admitted: MQTT 5 clients get CONNACK
// 0x9C (Use another server) with the Server Reference property naming
// their home's MQTT URL; MQTT 3.1.1 clients, which have no redirect, get
// return code 3 (Server unavailable). Birth identities are not redirected:
// they may provision anywhere. A failed lookup admits the device here.
type redirectHook struct {
	mqtt.HookBase
	g  *Gateway
	to Redirector
}

// ID implements mqtt.Hook.
func (h *redirectHook) ID() string { return "muster-region-redirect" }

// Provides implements mqtt.Hook.
func (h *redirectHook) Provides(b byte) bool { return b == mqtt.OnConnect }

// OnConnect implements mqtt.Hook.
func (h *redirectHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	dc := connOf(cl)
	if dc == nil || dc.identity.Kind != pki.IdentityOperational {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), redirectTimeout)
	defer cancel()
	url, elsewhere, err := h.to.Redirect(ctx, dc.identity.DeviceID)
	if err != nil {
		h.g.log.WarnContext(ctx, "gateway: home region lookup failed; serving the device here", "device", dc.identity.DeviceID, "err", err)
		return nil
	}
	if !elsewhere {
		return nil
	}
	code, props := packets.ErrUseAnotherServer, &packets.Properties{ServerReference: url}
	if cl.Properties.ProtocolVersion < 5 {
		code, props = packets.ErrServerUnavailable, nil
	}
	h.g.log.InfoContext(ctx, "gateway: device redirected to its home region", "device", dc.identity.DeviceID, "to", url, "protocol", cl.Properties.ProtocolVersion)
	if err := h.g.broker.SendConnack(cl, code, false, props); err != nil {
		return err
	}
	return errRedirected
}
