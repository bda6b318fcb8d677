package server

import (
	"context"
	"time"

	"github.com/muster-iot/muster/internal/audit"
)

// AuditConfig configures the configuration audit of a node.
type AuditConfig struct {
	// Interval runs the audit on a schedule, once per interval across all
	// nodes sharing the database; zero runs it only on demand.
	Interval time.Duration
	// Params are the checks' thresholds; zero fields take the defaults
	// (docs/audit.md).
	Params audit.Params

	// wrapStore, when set, wraps the store the audit reads and records
	// through; tests use it to hold a run in progress.
	wrapStore func(audit.Store) audit.Store
}

// newAuditRunner builds this node's audit runner, which the API runs on
// demand and runAudits on the schedule.
func (s *Server) newAuditRunner(ctx context.Context) (*audit.Runner, error) {
	// Before the API can start a run: what this node left running died
	// with its previous process.
	if n, err := s.store.CloseNodeAuditRuns(ctx, s.cfg.nodeID()); err != nil {
		return nil, err
	} else if n > 0 {
		s.cfg.logger().WarnContext(ctx, "audit: runs this node left running when it stopped are recorded failed", "runs", n)
	}
	var st audit.Store = s.store
	if s.cfg.Audit.wrapStore != nil {
		st = s.cfg.Audit.wrapStore(st)
	}
	return audit.New(audit.Config{Store: st, Params: s.cfg.Audit.Params, Node: s.cfg.nodeID(), Logger: s.cfg.logger()})
}

// auditStopTimeout bounds how long a stopping node waits for the audit
// runs it cancelled to be recorded failed.
const auditStopTimeout = 10 * time.Second

// runAudits runs the scheduled audit until ctx ends, if there is a
// schedule. Every node runs the schedule; each interval's run claims its
// slot in the database, so one node audits each interval (decision 0015).
//
// It also bounds the lifetime of the audits the API starts in the
// background: when ctx ends they are cancelled and recorded failed
// ("node stopping") before it returns, so Run closes the store only
// after they are recorded and no run is left "running".
func (s *Server) runAudits(ctx context.Context) error {
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditStopTimeout)
		defer cancel()
		if err := s.audit.Stop(stopCtx); err != nil {
			s.cfg.logger().Warn("audit: runs not recorded as stopped", "err", err)
		}
	}()
	if s.cfg.Audit.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	return s.audit.RunSchedule(ctx, s.cfg.Audit.Interval)
}
