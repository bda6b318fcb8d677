package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/muster-iot/muster/internal/alert"
	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/intel"
	"github.com/muster-iot/muster/internal/store"
)

// DetectConfig tunes behaviour detection (docs/detection.md).
type DetectConfig struct {
	// LearningSamples is how many datapoints a baseline needs before it
	// judges; detect.DefaultLearningSamples when zero. Demos lower it.
	LearningSamples int
	// MeterWindow is the gateway's metering window, the period of the
	// gateway datapoints; gateway.DefaultMeterWindow when zero.
	MeterWindow time.Duration
	// CheckpointEvery is how often the learned state of the devices that
	// changed is written to the store, so a restarted node judges at once
	// instead of learning again (docs/decisions/0017-detection-state.md);
	// the meter window when zero. Negative keeps the state in memory only:
	// nothing is written or restored.
	CheckpointEvery time.Duration
}

// detectPoll is how often a node rereads rules and intelligence, so a
// change made through another node applies here too.
const detectPoll = 5 * time.Second

// detection wires the gateway's observations to the engine and its
// findings to the alert manager.
type detection struct {
	store   *store.Store
	engine  *detect.Engine
	intel   *intel.Matcher
	reports *detect.Reports
	alerts  *alert.Manager
	deliver *alert.Deliverer
	gw      *lateGateway
	log     *slog.Logger

	// node names this node's rows of learned state; checkpointEvery is
	// zero when the state is not persisted; fetch queues the devices whose
	// state another node may have written (detect_state.go).
	node            string
	checkpointEvery time.Duration
	fetch           chan string

	cohorts sync.Map // device id -> model

	mu        sync.Mutex
	rulesDocs string
	intelRev  int64
}

// lateGateway lets the alert manager reach the gateway, which is created
// after it (the gateway needs the detector as its observer).
type lateGateway struct{ gw *gateway.Gateway }

// useGateway connects the alert manager to the gateway once it exists;
// it is called before the node serves anything.
func (d *detection) useGateway(g *gateway.Gateway) { d.gw.gw = g }

func (l *lateGateway) Rotate(ctx context.Context, deviceID, reason string) (bool, error) {
	if l.gw == nil {
		return false, alert.ErrUnavailable
	}
	return l.gw.Rotate(ctx, deviceID, reason)
}

func (l *lateGateway) Broadcast(ctx context.Context, group, topic string, payload []byte, retain bool) error {
	if l.gw == nil {
		return alert.ErrUnavailable
	}
	return l.gw.Broadcast(ctx, group, topic, payload, retain)
}

func newDetection(ctx context.Context, st *store.Store, rev alert.Revoker, cfg DetectConfig, node string, log *slog.Logger) (*detection, error) {
	d := &detection{store: st, intel: intel.NewMatcher(), reports: detect.NewReports(), gw: &lateGateway{}, log: log,
		node: node, checkpointEvery: checkpointInterval(cfg)}
	d.engine = detect.New(detect.Config{LearningSamples: cfg.LearningSamples, Intel: d.intel})
	d.alerts = alert.New(alert.Config{Store: st, Revoker: rev, Rotator: d.gw, Broadcaster: d.gw, Node: node, Logger: log})
	d.deliver = &alert.Deliverer{Store: st, Logger: log}
	defaults := detect.DefaultRules()
	docs := make([]store.DetectRule, len(defaults))
	for i := range defaults {
		if err := defaults[i].Validate(); err != nil {
			return nil, fmt.Errorf("default rule %s: %w", defaults[i].ID, err)
		}
		doc, err := json.Marshal(defaults[i])
		if err != nil {
			return nil, err
		}
		docs[i] = store.DetectRule{ID: defaults[i].ID, Doc: doc}
	}
	if seeded, err := st.SeedDetectRules(ctx, docs, "muster"); err != nil {
		return nil, fmt.Errorf("install the default detection rules: %w", err)
	} else if seeded {
		log.Info("detection: default rules installed", "rules", len(docs))
	}
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	// Restored before the gateway exists, so no observation meets a
	// device that is learning only because the node restarted.
	if err := d.restore(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Reload rereads the rules and, when a feed changed, the intelligence.
func (d *detection) Reload(ctx context.Context) error {
	stored, err := d.store.DetectRules(ctx)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(stored)
	d.mu.Lock()
	defer d.mu.Unlock()
	if string(raw) != d.rulesDocs {
		var rules []detect.Rule
		for _, sr := range stored {
			var r detect.Rule
			err := json.Unmarshal(sr.Doc, &r)
			if err == nil {
				err = r.Validate()
			}
			if err != nil {
				d.log.Warn("detection: rule skipped", "rule", sr.ID, "err", err)
				continue
			}
			rules = append(rules, r)
		}
		d.engine.SetRules(rules)
		d.rulesDocs = string(raw)
	}
	rev, err := d.store.IntelRevision(ctx)
	if err != nil {
		return err
	}
	if rev != d.intelRev {
		feeds, err := d.store.IntelFeeds(ctx)
		if err != nil {
			return err
		}
		var all []intel.Feed
		for _, f := range feeds {
			inds, err := d.store.IntelIndicators(ctx, f.Name)
			if err != nil {
				return err
			}
			feed := intel.Feed{Name: f.Name}
			for _, i := range inds {
				feed.Indicators = append(feed.Indicators, intel.Indicator{Type: i.Type, Value: i.Value, Name: i.Name})
			}
			all = append(all, feed)
		}
		d.intel.Load(all)
		d.intelRev = rev
	}
	return nil
}

// DeviceBaselines and LearningSamples serve the API.
func (d *detection) DeviceBaselines(id string) ([]detect.Baseline, bool, bool) {
	return d.engine.DeviceBaselines(id)
}

func (d *detection) LearningSamples() int { return d.engine.LearningSamples() }

func (d *detection) CohortBaselines(model string) []detect.Baseline {
	return d.engine.CohortBaselines(model)
}

// cohort is a device's model, looked up once per device.
func (d *detection) cohort(id string) string {
	if m, ok := d.cohorts.Load(id); ok {
		return m.(string)
	}
	model := ""
	if dev, err := d.store.GetDevice(context.Background(), id); err == nil {
		model = dev.Identity.Model
	}
	d.cohorts.Store(id, model)
	// The first sight of a device since the node started: if the node
	// did not restore it, another node may have learned it.
	d.requestState(id)
	return model
}

// ObserveWindow implements gateway.Observer.
func (d *detection) ObserveWindow(w store.MeterWindow) {
	o := detect.FromWindow(w, d.cohort(w.DeviceID))
	d.evaluate(&o)
}

// ObserveReport implements gateway.Observer.
func (d *detection) ObserveReport(deviceID string, at time.Time, r *gateway.Report) {
	o := d.reports.Observation(deviceID, d.cohort(deviceID), at, r)
	d.evaluate(&o)
}

func (d *detection) evaluate(o *detect.Observation) {
	for _, f := range d.engine.Evaluate(o, nil) {
		d.alerts.Enqueue(f)
	}
}

// run records alerts, delivers webhooks, follows rule and intelligence
// changes and checkpoints the learned state until ctx ends, and then
// checkpoints once more.
func (d *detection) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { d.alerts.Run(ctx) })
	wg.Go(func() { d.deliver.Run(ctx) })
	wg.Go(func() { d.alerts.Follow(ctx, d.store, time.Second) })
	if d.checkpointEvery > 0 {
		wg.Go(func() { d.fetchStates(ctx) })
		// Apart from the reloads below: a checkpoint of a large fleet
		// takes seconds, and rule changes should not wait for it.
		wg.Go(func() { d.checkpointLoop(ctx) })
	}
	t := time.NewTicker(detectPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			d.finalCheckpoint(ctx)
			return nil
		case <-t.C:
			if err := d.Reload(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("detection: cannot reload rules and intelligence", "err", err)
			}
		}
	}
}
