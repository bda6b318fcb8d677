package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/store"
)

// RuleList is the answer of GET /v1/detect/rules.
type RuleList struct {
	Items []detect.Rule `json:"items"`
}

// Baselines is the answer of GET /v1/devices/{id}/baselines.
type Baselines struct {
	DeviceID string `json:"deviceId"`
	// Observed is false when this node's detector has seen nothing of
	// the device.
	Observed bool `json:"observed"`
	// Learning is true until every metric has LearningSamples datapoints.
	Learning        bool              `json:"learning"`
	LearningSamples int               `json:"learningSamples"`
	Baselines       []detect.Baseline `json:"baselines"`
	// Model and ModelBaselines are what this node learned of the device's
	// model, over all its devices.
	Model          string            `json:"model"`
	ModelBaselines []detect.Baseline `json:"modelBaselines"`
}

func (s *Server) listDetectRules(r *http.Request) (*RuleList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	stored, err := ds.DetectRules(r.Context())
	if err != nil {
		return nil, err
	}
	out := &RuleList{Items: []detect.Rule{}}
	for _, sr := range stored {
		var rule detect.Rule
		if err := json.Unmarshal(sr.Doc, &rule); err != nil {
			return nil, fmt.Errorf("stored rule %s: %w", sr.ID, err)
		}
		out.Items = append(out.Items, rule)
	}
	return out, nil
}

func (s *Server) putDetectRule(r *http.Request, in *detect.Rule) (*detect.Rule, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if in.ID == "" {
		in.ID = id
	}
	if in.ID != id {
		return nil, validationError("id", "the body names rule %q but the path %q", in.ID, id)
	}
	if err := in.Validate(); err != nil {
		return nil, validationError("rule", "%v", err)
	}
	doc, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if err := ds.SaveDetectRules(r.Context(), []store.DetectRule{{ID: in.ID, Doc: doc}}, principal(r).Actor()); err != nil {
		return nil, err
	}
	s.reloadDetector(r.Context())
	return in, nil
}

func (s *Server) deleteDetectRule(r *http.Request) error {
	ds, err := s.detectStore()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := ds.DeleteDetectRule(r.Context(), id, principal(r).Actor()); err != nil {
		return alertError("rule", id, err)
	}
	s.reloadDetector(r.Context())
	return nil
}

// reloadDetector applies a change to this node's detector at once; other
// nodes pick it up when they next poll.
func (s *Server) reloadDetector(ctx context.Context) {
	if s.detector == nil {
		return
	}
	if err := s.detector.Reload(ctx); err != nil {
		s.log.Error("reloading the detector", "err", err)
	}
}

func (s *Server) deviceBaselines(r *http.Request) (*Baselines, error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return nil, err
	}
	out := &Baselines{DeviceID: d.ID, Learning: true, Baselines: []detect.Baseline{}, LearningSamples: detect.DefaultLearningSamples,
		Model: d.Identity.Model, ModelBaselines: []detect.Baseline{}}
	if s.detector == nil {
		return out, nil
	}
	bs, learning, observed := s.detector.DeviceBaselines(d.ID)
	out.Observed, out.Learning, out.LearningSamples = observed, learning, s.detector.LearningSamples()
	if bs != nil {
		out.Baselines = bs
	}
	if ms := s.detector.CohortBaselines(d.Identity.Model); ms != nil {
		out.ModelBaselines = ms
	}
	return out, nil
}
