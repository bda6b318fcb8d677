package audit

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// progress counts what a run has examined. Checks count through it from
// the run's goroutine while the reporter reads it from another.
type progress struct {
	devices, certificates, meterRows, histories, findings, checksDone atomic.Int64

	mu    sync.Mutex
	check string
}

func (p *progress) setCheck(id string) {
	p.mu.Lock()
	p.check = id
	p.mu.Unlock()
}

func (p *progress) checkDone() {
	p.mu.Lock()
	p.check = ""
	p.checksDone.Add(1)
	p.mu.Unlock()
}

// snapshot is the progress as the store records it.
func (p *progress) snapshot() store.AuditProgress {
	p.mu.Lock()
	check, done := p.check, p.checksDone.Load()
	p.mu.Unlock()
	return store.AuditProgress{ChecksDone: int(done), Check: check, Devices: p.devices.Load(), Certificates: p.certificates.Load(),
		MeterRows: p.meterRows.Load(), Histories: p.histories.Load(), Findings: int(p.findings.Load())}
}

// reportProgress records the run's progress every r.progressEvery while
// it changes, until the returned function is called (which waits for a
// report under way) or ctx ends.
func (r *Runner) reportProgress(ctx context.Context, runID string, p *progress) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(r.progressEvery)
		defer tick.Stop()
		var last store.AuditProgress
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cur := p.snapshot()
			if cur == last {
				continue
			}
			if err := r.st.AuditRunProgress(ctx, runID, cur); err != nil {
				if ctx.Err() == nil {
					r.log.WarnContext(ctx, "audit: progress not recorded", "run", runID, "err", err)
				}
				continue
			}
			last = cur
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// countingStore counts the rows the checks read into a run's progress.
// It wraps the fleet-wide reads, which are what makes a run long.
type countingStore struct {
	Store
	p *progress
}

func (c *countingStore) EachCertificate(ctx context.Context, fn func(*store.Certificate) error) error {
	return c.Store.EachCertificate(ctx, func(cert *store.Certificate) error {
		c.p.certificates.Add(1)
		return fn(cert)
	})
}

func (c *countingStore) EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error {
	return c.Store.EachAuditDevice(ctx, func(d store.AuditDevice) error {
		c.p.devices.Add(1)
		return fn(d)
	})
}

func (c *countingStore) EachMeterRow(ctx context.Context, since time.Time, fn func(node string, w store.MeterWindow) error) error {
	return c.Store.EachMeterRow(ctx, since, func(node string, w store.MeterWindow) error {
		c.p.meterRows.Add(1)
		return fn(node, w)
	})
}

func (c *countingStore) EachChain(ctx context.Context, fn func(subject string, events []fleet.Event) error) error {
	return c.Store.EachChain(ctx, func(subject string, events []fleet.Event) error {
		c.p.histories.Add(1)
		return fn(subject, events)
	})
}
