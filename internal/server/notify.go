package server

import (
	"context"

	"github.com/muster-iot/muster/internal/notify"
	"github.com/muster-iot/muster/internal/provision"
)

// subscribe points the node's caches at the notices of changes: on
// PostgreSQL those every node makes (Listen relays them), on SQLite this
// node's own. A cache told of a change re-reads at once; each keeps its
// periodic refresh as the safety net for notices lost while the listener
// reconnects (docs/decisions/0013-many-nodes.md).
func (s *Server) subscribe(prov *provision.Pipeline) {
	s.hub.Subscribe(notify.Revocations, func(string) { s.rev.Changed() })
	s.hub.Subscribe(notify.CAs, func(string) { s.cas.registry.Changed() })
	s.hub.Subscribe(notify.Templates, prov.TemplateChanged)
	s.hub.Subscribe(notify.Devices, s.gw.DeviceChanged)
}

// listen relays the database's notifications to the node's caches until
// ctx ends. Only PostgreSQL has any: on SQLite there is one node, and the
// store hands its notices to the hub itself.
func (s *Server) listen(ctx context.Context) error {
	if s.store.Backend() != "postgres" {
		return nil
	}
	return s.hub.Listen(ctx, s.cfg.DatabaseURL, s.cfg.logger())
}
