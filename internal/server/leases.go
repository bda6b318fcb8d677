package server

import (
	"github.com/muster-iot/muster/internal/lease"
	"github.com/muster-iot/muster/internal/revocation"
)

// newLeases returns the manager of the leases through which this node
// claims work that must run on one node at a time: bulk jobs and CRL
// publication (decisions 0012 and 0013). Config.LeaseTTL bounds how long a
// dead node's work waits before another node takes it over.
func (s *Server) newLeases() (*lease.Manager, error) {
	return lease.New(lease.Config{Store: s.store, Node: s.cfg.nodeID(), TTL: s.cfg.LeaseTTL, Logger: s.cfg.logger()})
}

// crlLeases is what the revocation service claims CRL publication with:
// the node's leases on PostgreSQL, where several nodes may run; none on
// SQLite, whose one node publishes on its own as it always has.
func (s *Server) crlLeases(leases *lease.Manager) revocation.Leases {
	if s.store.Backend() != "postgres" {
		return nil
	}
	return leases
}
