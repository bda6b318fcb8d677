package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
)

// Reasons a verified certificate is still refused a session. The gateway
// logs and meters them; the device gets a CONNACK reason code that says
// whether retrying can help (refusalCode), never more.
var (
	// ErrClientID means the MQTT client id is not the one the certificate
	// entitles the client to.
	ErrClientID = errors.New("gateway: client id does not match the certificate")
	// ErrDeviceState means the device's lifecycle state does not allow a
	// live session (fleet.CanConnect).
	ErrDeviceState = errors.New("gateway: device state does not allow connecting")
	// ErrUnsafeID means a device id cannot be placed in a topic safely.
	ErrUnsafeID = errors.New("gateway: device id is not a safe topic level")
)

// BirthClientID is the MQTT client id a device must use while it holds only
// its birth certificate: "birth:{factory}:{serial}" (factory is empty for
// external manufacturer certificates). Deriving it from the certificate
// keeps a birth device from taking over another device's session, which
// MQTT would otherwise allow to anyone who picks the same client id.
func BirthClientID(id pki.Identity) string {
	return "birth:" + id.Factory + ":" + id.Serial
}

// DeviceAccess is what the gateway needs of a device record to admit it
// and to scope its topics.
type DeviceAccess struct {
	ID      string
	State   fleet.State
	Groups  []string
	Version int64
}

// principalOf is the topic policy principal of an admitted device.
func principalOf(a DeviceAccess) Principal {
	role := RoleOperational
	if a.State == fleet.StateQuarantined {
		role = RoleQuarantined
	}
	return Principal{Role: role, DeviceID: a.ID, Groups: a.Groups}
}

// accessLookup finds a device's current access data.
type accessLookup interface {
	access(ctx context.Context, id string) (DeviceAccess, error)
}

// admit decides whether a client that proved identity id may open a session
// under clientID, with which principal, and, for an operational identity,
// the device status it was admitted by (also when its state refuses it). The certificate itself has
// been verified at the handshake already.
func admit(ctx context.Context, devices accessLookup, id pki.Identity, clientID string) (Principal, DeviceAccess, error) {
	switch id.Kind {
	case pki.IdentityBirth:
		if want := BirthClientID(id); clientID != want {
			return Principal{}, DeviceAccess{}, fmt.Errorf("birth certificate %q connected as %q, must use %q: %w", id.Serial, clientID, want, ErrClientID)
		}
		return Principal{Role: RoleBirth}, DeviceAccess{}, nil
	case pki.IdentityOperational:
		if !safeID(id.DeviceID) {
			return Principal{}, DeviceAccess{}, fmt.Errorf("device id %q: %w", id.DeviceID, ErrUnsafeID)
		}
		if clientID != id.DeviceID {
			return Principal{}, DeviceAccess{}, fmt.Errorf("certificate of device %s connected as %q: %w", id.DeviceID, clientID, ErrClientID)
		}
		a, err := devices.access(ctx, id.DeviceID)
		if err != nil {
			return Principal{}, DeviceAccess{}, fmt.Errorf("look up device %s: %w", id.DeviceID, err)
		}
		if !fleet.CanConnect(a.State) {
			return Principal{}, a, fmt.Errorf("device %s is %s: %w", id.DeviceID, a.State, ErrDeviceState)
		}
		return principalOf(a), a, nil
	}
	return Principal{}, DeviceAccess{}, fmt.Errorf("identity kind %q: %w", id.Kind, pki.ErrUntrusted)
}
