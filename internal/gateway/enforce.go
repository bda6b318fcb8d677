package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
)

// DefaultEnforceInterval is how often live sessions are checked against
// revocations and device state: well inside the one second within which a
// revoked, suspended or quarantined device must be cut off or restricted.
const DefaultEnforceInterval = 250 * time.Millisecond

// errWillTopic refuses a session whose will message names a topic its
// principal may not publish to; the broker would otherwise publish it on
// the device's behalf after it is gone.
var errWillTopic = errors.New("gateway: will topic not allowed")

// sessions is the registry of live device sessions.
type sessions struct {
	mu       sync.Mutex
	byClient map[*mqtt.Client]*deviceConn
	byID     map[string]*mqtt.Client
	// takeovers counts sessions that replaced a live one of the same id.
	takeovers atomic.Int64
}

func newSessions() *sessions {
	return &sessions{byClient: map[*mqtt.Client]*deviceConn{}, byID: map[string]*mqtt.Client{}}
}

// add registers a session; it owns its client id from now on.
func (s *sessions) add(cl *mqtt.Client, dc *deviceConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byClient[cl] = dc
	s.byID[cl.ID] = cl
}

// remove unregisters a session and reports whether it released its
// client id: false when a newer session took it over, or when the session
// was not registered.
func (s *sessions) remove(cl *mqtt.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byClient, cl)
	if s.byID[cl.ID] != cl {
		return false
	}
	delete(s.byID, cl.ID)
	return true
}

// liveSession is a registry entry, copied out so enforcement works without
// holding the lock while it disconnects clients.
type liveSession struct {
	client *mqtt.Client
	conn   *deviceConn
}

// connected reports whether a client id has a live session.
func (s *sessions) connected(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byID[clientID]
	return ok
}

// count is the number of live sessions.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byClient)
}

func (s *sessions) snapshot() []liveSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]liveSession, 0, len(s.byClient))
	for cl, dc := range s.byClient {
		out = append(out, liveSession{cl, dc})
	}
	return out
}

// enforceLoop applies revocations and device state changes to live
// sessions every interval until ctx ends.
func (g *Gateway) enforceLoop(ctx context.Context) {
	tick := time.NewTicker(g.enforceEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			g.enforce(ctx)
		case <-g.states.wake:
			g.enforce(ctx)
		}
	}
}

// enforce disconnects sessions whose certificate chain is now revoked or
// whose device may no longer connect, and re-scopes sessions whose device
// moved into or out of quarantine or changed groups.
func (g *Gateway) enforce(ctx context.Context) {
	changed, err := g.states.poll(ctx)
	if err != nil {
		// Revocations still apply; state changes wait for the next poll.
		g.log.WarnContext(ctx, "gateway: cannot poll device changes", "err", err)
	}
	live := g.sessions.snapshot()
	devices := make(map[string]bool, len(live))
	for _, s := range live {
		if s.conn.identity.Kind == pki.IdentityOperational {
			devices[s.conn.identity.DeviceID] = true
		}
	}
	reported, err := g.states.reread(ctx, devices)
	if err != nil {
		g.log.WarnContext(ctx, "gateway: cannot re-read devices other nodes changed", "err", err)
	}
	changed = append(changed, reported...)
	byID := make(map[string]DeviceAccess, len(changed))
	for _, a := range changed {
		byID[a.ID] = a
	}
	for _, s := range live {
		id := s.conn.identity
		if revoked, err := g.chainRevoked(ctx, id); revoked || err != nil {
			g.cutOff(ctx, s, reasonRevoked, packets.ErrNotAuthorized, err)
			continue
		}
		if id.Kind != pki.IdentityOperational {
			continue
		}
		a, ok := byID[id.DeviceID]
		if !ok {
			continue
		}
		if !fleet.CanConnect(a.State) {
			g.cutOff(ctx, s, string(a.State), stateRefusal(a.State), nil)
			continue
		}
		p := principalOf(a)
		s.conn.principal.Store(&p)
		g.log.InfoContext(ctx, "gateway: session re-scoped", "device", a.ID, "state", a.State, "role", p.Role)
	}
}

// chainRevoked reports whether any certificate of a session's verified
// chain is revoked now. An error means the status is unknown, and the
// caller fails closed, as the handshake would.
func (g *Gateway) chainRevoked(ctx context.Context, id pki.Identity) (bool, error) {
	for i := 0; i+1 < len(id.Chain); i++ {
		revoked, err := g.revocation.IsRevoked(ctx, id.Chain[i+1], id.Chain[i].SerialNumber)
		if revoked || err != nil {
			return revoked, err
		}
	}
	return false, nil
}

// reasonRevoked is the disconnect reason of a session whose certificate
// chain was revoked; a session cut off for its device's state has the
// state as its reason.
const reasonRevoked = "revoked"

// cutOff disconnects a live session: MQTT 5 clients receive DISCONNECT
// with code; older ones see the connection close.
func (g *Gateway) cutOff(ctx context.Context, s liveSession, why string, code packets.Code, err error) {
	g.log.InfoContext(ctx, "gateway: disconnecting session", "client", s.client.ID, "reason", why, "err", err)
	s.conn.enforced.Store(&why)
	// The broker's OnDisconnect unregisters the session.
	_ = g.broker.DisconnectClient(s.client, code)
}
