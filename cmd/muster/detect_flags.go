package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/gateway"
	"github.com/muster-iot/muster/internal/server"
)

// detectFlags tune behaviour detection in muster serve.
type detectFlags struct {
	learning    int
	meterWindow time.Duration
	checkpoint  time.Duration
}

func (f *detectFlags) bind(fs *pflag.FlagSet) {
	fs.IntVar(&f.learning, "detect-learning", detect.DefaultLearningSamples,
		"datapoints a device's baseline needs before statistical rules judge it (a day of 5-minute windows); lower it only for demos (env MUSTER_DETECT_LEARNING)")
	fs.DurationVar(&f.meterWindow, "meter-window", gateway.DefaultMeterWindow,
		"length of the gateway's per-device metering windows, the period of its datapoints (env MUSTER_METER_WINDOW)")
	fs.DurationVar(&f.checkpoint, "detect-checkpoint", 0,
		"how often learned detection baselines are saved, so a restarted node judges at once; 0 means every meter window, negative keeps them in memory only (env MUSTER_DETECT_CHECKPOINT)")
}

// config checks the flags; unbound flags (muster migrate) mean the
// defaults.
func (f *detectFlags) config() (server.DetectConfig, error) {
	if *f == (detectFlags{}) {
		return server.DetectConfig{}, nil
	}
	switch {
	case f.learning < 1:
		return server.DetectConfig{}, fmt.Errorf("--detect-learning %d: want at least 1 datapoint", f.learning)
	case f.meterWindow < time.Second || f.meterWindow > 24*time.Hour:
		return server.DetectConfig{}, fmt.Errorf("--meter-window %s: want 1s to 24h", f.meterWindow)
	case f.checkpoint > 0 && f.checkpoint < time.Second:
		return server.DetectConfig{}, fmt.Errorf("--detect-checkpoint %s: want at least 1s (0: every meter window; negative: never)", f.checkpoint)
	}
	return server.DetectConfig{LearningSamples: f.learning, MeterWindow: f.meterWindow, CheckpointEvery: f.checkpoint}, nil
}
