package gateway

import mqtt "github.com/mochi-mqtt/server/v2"

// Per-session limits of the broker. mochi's defaults suit a few hundred
// clients; a node holds tens of thousands of devices, each sending a
// little, so memory per session matters more than burst capacity.
const (
	// maxWritesPending bounds the packets queued for one client. mochi
	// allocates the queue up front: its default (8,192) cost 64 KiB per
	// session, a third of a held connection's memory. A device that
	// falls 256 packets behind is too slow to keep up anyway; mochi drops
	// what does not fit and counts it.
	maxWritesPending = 256
	// maxSessionExpiry bounds how long a disconnected session (a device
	// that connected without a clean start) is kept: a day, so retained
	// state of devices gone for good does not pile up.
	maxSessionExpiry = 24 * 60 * 60
)

// brokerCapabilities are mochi's defaults with the limits above.
func brokerCapabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumClientWritesPending = maxWritesPending
	c.MaximumSessionExpiryInterval = maxSessionExpiry
	return c
}
