package server

import (
	"context"
	"errors"
	"time"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/store"
)

// The learned detection state outlives the node
// (docs/decisions/0017-detection-state.md):
//
//   - every CheckpointEvery, the devices observed since the last
//     checkpoint and every cohort are written to the store under this
//     node's name, and once more at a graceful stop;
//   - on start, before the gateway feeds anything, the node restores what
//     it wrote;
//   - a device the node sees for the first time and did not restore (it
//     moved from another node, or the node's name changed) has its state
//     fetched in the background, whoever wrote it. The observation that
//     triggered the fetch never waits for it: the device counts as
//     learning until its state arrives, and a device that has learned
//     here meanwhile keeps what it learned.

// fetchQueue bounds the devices waiting for their state. When a whole
// fleet moves to a node at once, the ones beyond it learn again rather
// than queue without limit.
const fetchQueue = 4096

// finalCheckpointTimeout bounds the checkpoint of a graceful stop.
const finalCheckpointTimeout = 30 * time.Second

// checkpointInterval is the configured checkpoint period, the meter
// window by default, and zero when the state is not persisted.
func checkpointInterval(cfg DetectConfig) time.Duration {
	switch {
	case cfg.CheckpointEvery > 0:
		return cfg.CheckpointEvery
	case cfg.CheckpointEvery < 0:
		return 0
	case cfg.MeterWindow > 0:
		return cfg.MeterWindow
	}
	return gateway.DefaultMeterWindow
}

// restore loads the cohort and device states this node wrote. A state
// that does not decode (another format version, corruption) is discarded:
// that device or cohort learns again. Only a cancelled ctx makes it fail.
func (d *detection) restore(ctx context.Context) error {
	if d.checkpointEvery == 0 {
		return nil
	}
	d.fetch = make(chan string, fetchQueue)
	start := time.Now()
	var cohorts, devices, discarded int
	var firstErr error
	discard := func(err error) {
		discarded++
		if firstErr == nil {
			firstErr = err
		}
	}
	err := d.store.CohortDetectStates(ctx, d.node, func(st store.DetectState) error {
		if _, err := d.engine.ImportCohort(st.Key, st.State); err != nil {
			discard(err)
		} else {
			cohorts++
		}
		return nil
	})
	if err == nil {
		err = d.store.DeviceDetectStates(ctx, d.node, func(st store.DetectState) error {
			if _, err := d.engine.ImportDevice(st.Key, st.State); err != nil {
				discard(err)
			} else {
				devices++
			}
			return nil
		})
	}
	// The state only spares the devices a day of learning: a node that
	// cannot read it starts anyway, with what it restored so far.
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		d.log.Warn("detection: cannot restore the learned state; devices not restored learn again", "err", err, "devices", devices, "cohorts", cohorts)
	}
	attrs := []any{"node", d.node, "devices", devices, "cohorts", cohorts, "took", time.Since(start).Round(time.Millisecond)}
	if discarded > 0 {
		d.log.Warn("detection: learned state discarded; those devices learn again", append(attrs, "discarded", discarded, "err", firstErr)...)
	}
	d.log.Info("detection: learned state restored", attrs...)
	return nil
}

// requestState queues a fetch of a device's state unless the engine has
// the device already. It never blocks.
func (d *detection) requestState(id string) {
	if d.fetch == nil || d.engine.Observed(id) {
		return
	}
	select {
	case d.fetch <- id:
	default:
		d.log.Debug("detection: state fetch queue full; the device learns again", "device", id)
	}
}

// fetchStates imports the states requestState queued until ctx ends.
func (d *detection) fetchStates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.fetch:
			st, err := d.store.DeviceDetectState(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("detection: cannot fetch learned state; the device learns again", "device", id, "err", err)
				}
				continue
			}
			if _, err := d.engine.ImportDevice(id, st.State); err != nil {
				d.log.Warn("detection: learned state discarded; the device learns again", "device", id, "node", st.Node, "err", err)
			}
		}
	}
}

// checkpoint writes the state of the devices observed since the last
// checkpoint, one transaction per engine shard, and of every cohort. A
// shard whose write fails is retried at the next checkpoint.
func (d *detection) checkpoint(ctx context.Context) error {
	if d.checkpointEvery == 0 {
		return nil
	}
	start := time.Now()
	var rows []store.DetectState
	devices := 0
	err := d.engine.ExportChanged(func(batch []detect.DeviceState) error {
		rows = rows[:0]
		for _, s := range batch {
			rows = append(rows, store.DetectState{Key: s.ID, State: s.State})
		}
		n, err := d.store.SaveDeviceDetectStates(ctx, d.node, rows)
		devices += n
		return err
	})
	if err != nil {
		return err
	}
	var cohorts []store.DetectState
	for _, c := range d.engine.Cohorts() {
		if b, ok := d.engine.ExportCohort(c); ok {
			cohorts = append(cohorts, store.DetectState{Key: c, State: b})
		}
	}
	if len(cohorts) > 0 {
		if err := d.store.SaveCohortDetectStates(ctx, d.node, cohorts); err != nil {
			return err
		}
	}
	d.log.Debug("detection: learned state checkpointed", "devices", devices, "cohorts", len(cohorts), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkpointLoop checkpoints every checkpointEvery until ctx ends; the
// final checkpoint is run's, once every loop has stopped.
func (d *detection) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(d.checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.checkpoint(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("detection: cannot checkpoint the learned state", "err", err)
			}
		}
	}
}

// finalCheckpoint is the checkpoint of a graceful stop, on a context of
// its own since the node's has ended.
func (d *detection) finalCheckpoint(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalCheckpointTimeout)
	defer cancel()
	if err := d.checkpoint(ctx); err != nil {
		d.log.Warn("detection: cannot checkpoint the learned state at stop; changes since the last checkpoint are lost", "err", err)
	}
}
