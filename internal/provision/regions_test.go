package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// withRegions gives the node's pipeline a region service over its store
// and three regions: eu (Paris), us (New York), ap (Tokyo).
func withRegions(t *testing.T) pt.Option {
	return func(cfg *provision.Config) {
		st := cfg.Store.(*store.Store)
		for _, g := range []store.Region{
			{Name: "eu", Location: &store.Coordinates{Lat: 48.86, Lon: 2.35}},
			{Name: "us", Location: &store.Coordinates{Lat: 40.71, Lon: -74.01}},
			{Name: "ap", Location: &store.Coordinates{Lat: 35.68, Lon: 139.65}},
		} {
			g.ProvisionURL, g.MQTTURL, g.ProbeURL, g.Weight = "https://"+g.Name+".example:9443", "mqtts://"+g.Name+".example:8883", "https://"+g.Name+".example:9443/v1/probe", 1
			if err := region.Validate(&g); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateRegion(context.Background(), &g, "test/setup"); err != nil {
				t.Fatal(err)
			}
		}
		svc, err := region.New(region.Config{Store: st, Node: cfg.Region, CacheTTL: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Regions = svc
	}
}

// TestRegionPoliciesThroughThePipeline provisions one device per policy
// and checks the answer, the device record and the history.
func TestRegionPoliciesThroughThePipeline(t *testing.T) {
	n := pt.Start(t, withRegions(t))
	var hookDelay atomic.Int64 // a timed-out case's handler may outlive it
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(hookDelay.Load())):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"region":"us"}`))
	}))
	defer hook.Close()

	for i, tc := range []struct {
		name   string
		policy *region.Policy
		extra  map[string]any
		delay  time.Duration
		want   string
		by     string
	}{
		{"default is lowest-latency, samples win over the median", nil,
			map[string]any{"measurements": map[string]any{"eu": map[string]any{"medianMs": 1, "samplesMs": []float64{50, 60, 55}}, "ap": map[string]any{"medianMs": 20}}},
			0, "ap", region.PolicyLowestLatency},
		{"lowest-latency with medians only", &region.Policy{Policy: region.PolicyLowestLatency},
			map[string]any{"latenciesMs": map[string]float64{"eu": 30, "us": 12, "ap": 200}}, 0, "us", region.PolicyLowestLatency},
		{"geo by the reported location", &region.Policy{Policy: region.PolicyGeo},
			map[string]any{"location": map[string]float64{"lat": 51.5, "lon": -0.13}}, 0, "eu", region.PolicyGeo},
		{"weighted", &region.Policy{Policy: region.PolicyWeighted}, nil, 0, "", region.PolicyWeighted},
		{"static", &region.Policy{Policy: region.PolicyStatic, Region: "ap"}, nil, 0, "ap", region.PolicyStatic},
		{"hook", &region.Policy{Policy: region.PolicyHook, Hook: &region.AllocationHook{URL: hook.URL, Timeout: "300ms"}}, nil, 0, "us", region.PolicyHook},
		{"hook timeout falls back", &region.Policy{Policy: region.PolicyHook, Hook: &region.AllocationHook{URL: hook.URL, Timeout: "100ms"}, Fallback: region.PolicyGeo},
			map[string]any{"location": map[string]float64{"lat": 34.7, "lon": 135.5}}, time.Second, "ap", region.PolicyGeo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hookDelay.Store(int64(tc.delay))
			tmpl := pt.BasicTemplate(fmt.Sprintf("t-region-%d", i))
			tmpl.Region = tc.policy
			n.PutTemplate(t, tmpl)
			dev := n.Manufacture(t)
			extra := map[string]any{"template": tmpl.Name, "parameters": map[string]any{"site": "lyon"}}
			for k, v := range tc.extra {
				extra[k] = v
			}
			resp, _ := n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), extra))
			if tc.want != "" && resp.Region != tc.want {
				t.Fatalf("region %q, want %q", resp.Region, tc.want)
			}
			if resp.Endpoints.MQTT != "mqtts://"+resp.Region+".example:8883" || resp.ServedBy != "eu-test" ||
				resp.Redirect == nil || resp.Redirect.Region != resp.Region || resp.Redirect.Reason != provision.RedirectAllocatedElsewhere {
				t.Errorf("answer: region %s endpoints %+v servedBy %s redirect %+v", resp.Region, resp.Endpoints, resp.ServedBy, resp.Redirect)
			}
			d, err := n.Store.GetDevice(context.Background(), dev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Attributes[region.AttrHome] != resp.Region || d.Attributes[region.AttrPolicy] != tc.by ||
				d.Provisioning.Registration.Data["region"] != resp.Region {
				t.Errorf("device attributes %v, registration %v", d.Attributes, d.Provisioning.Registration.Data)
			}
			if !pt.HasEvent(n.Events(t, dev.ID), provision.EventProvisioned, `"decidedBy":"`+tc.by+`"`) {
				t.Errorf("no device.provisioned event with decidedBy %s", tc.by)
			}
		})
	}
}

// TestRegionBadMeasurements: malformed measurements are 400s with a
// message, and nothing is provisioned.
func TestRegionBadMeasurements(t *testing.T) {
	n := pt.Start(t, withRegions(t))
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	for name, extra := range map[string]map[string]any{
		"too many samples": {"measurements": map[string]any{"eu": map[string]any{"samplesMs": make([]float64, region.MaxSamples+1)}}},
		"latitude 100":     {"location": map[string]any{"lat": 100, "lon": 0}},
		"not a number":     {"measurements": map[string]any{"eu": map[string]any{"medianMs": "fast"}}},
		"unknown field":    {"measurements": map[string]any{"eu": map[string]any{"meanMs": 3}}},
	} {
		t.Run(name, func(t *testing.T) {
			a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), extra)
			var e provision.JSONError
			if a.Status != http.StatusBadRequest || json.Unmarshal(a.Body, &e) != nil || e.Code != "bad_request" || e.Message == "" {
				t.Errorf("%d %s, want 400 bad_request", a.Status, a.Body)
			}
		})
	}
	d, _ := n.Store.GetDevice(context.Background(), dev.ID)
	if d.Attributes[region.AttrHome] != "" {
		t.Errorf("a refused request set a home region: %v", d.Attributes)
	}
}
