package server

import (
	"github.com/muster-iot/muster/internal/jobs"
	"github.com/muster-iot/muster/internal/lease"
)

// newJobRunner builds this node's bulk job runner (s.jobs) and returns the
// job service its API starts jobs with. The runner takes jobs through leases held in the
// shared database under the node's id, so with several nodes each job runs
// on one of them and moves to another when that node dies (decision 0012);
// a job this node accepts wakes its own runner. The runner also deletes
// finished jobs past Config.JobRetention, under a lease of its own so one
// node does it at a time; leases are used on SQLite too, where the one node
// always gets them.
func (s *Server) newJobRunner(leases *lease.Manager) *jobs.Service {
	cfg := jobs.Config{Store: s.store, Logger: s.cfg.logger(), Retention: s.cfg.JobRetention}
	s.jobs = jobs.NewRunner(cfg, leases, 0)
	cfg.Queued = s.jobs.Wake
	return jobs.NewService(cfg)
}
