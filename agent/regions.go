package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/region"
)

// Region paths on the device listener.
const (
	bootstrapPath = "/v1/bootstrap"
	reportPath    = "/v1/regions/report"
)

// RehomeCommand is the command Muster sends a device whose home region
// changed (a drain); the payload names the new home.
const RehomeCommand = "rehome"

// Probe defaults.
const (
	// DefaultProbeSamples is how many times each probe is timed.
	DefaultProbeSamples = 5
	// probeTimeout bounds one sample: the plausibility limit Muster
	// applies.
	probeTimeout = time.Duration(region.MaxPlausibleMs) * time.Millisecond
)

// Home is where a device belongs: its home region's endpoints.
type Home struct {
	Region       string `json:"region"`
	ProvisionURL string `json:"provisionUrl,omitempty"`
	MQTTURL      string `json:"mqttUrl,omitempty"`
}

// rehomePayload is the payload of the rehome command.
type rehomePayload struct {
	Home
	MovedAt time.Time `json:"movedAt"`
	// Renew: the new home issues from another CA (regional CAs); renew
	// there.
	Renew bool `json:"renew,omitempty"`
}

// RegionReport is Muster's answer to a measurement report.
type RegionReport struct {
	Home
	// Moved says the report re-homed the device.
	Moved  bool   `json:"moved"`
	Better string `json:"better,omitempty"`
	Streak int    `json:"streak,omitempty"`
	// Renew says the device's certificate is not from its home region's
	// CA; Report renews at once when it is set.
	Renew bool `json:"renew,omitempty"`
}

// Bootstrap fetches the signed bootstrap document from the device
// listener (with the birth credential, or the operational one once
// provisioned) and verifies it against Roots: the regions and their
// probes.
func (a *Agent) Bootstrap(ctx context.Context) (*region.Document, error) {
	cred := a.regionCredential()
	if cred == nil {
		return nil, errors.New("agent: the bootstrap document needs a birth or operational credential")
	}
	c := a.client(cred)
	defer c.CloseIdleConnections()
	status, _, body, err := do(ctx, c, http.MethodGet, strings.TrimSuffix(a.server(), "/")+bootstrapPath, "", nil)
	if err != nil {
		return nil, fmt.Errorf("agent: bootstrap document: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("agent: bootstrap document: server answered %d", status)
	}
	doc, err := region.VerifyBootstrap(string(body), a.cfg.Roots, time.Now())
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return doc, nil
}

// Measure times every region's probe of doc: ProbeSamples samples each,
// one after another, each a new TCP connection, a full TLS handshake
// presenting the device's credential, and one GET of the probe URL, timed
// from before the dial until the answer's body is read. Failed samples are
// left out; a region with none left is not reported. The median is of the
// samples that succeeded.
func (a *Agent) Measure(ctx context.Context, doc *region.Document) map[string]region.Measurement {
	cred := a.regionCredential()
	n := a.cfg.ProbeSamples
	if n <= 0 {
		n = DefaultProbeSamples
	}
	n = min(n, region.MaxSamples)
	out := map[string]region.Measurement{}
	for _, e := range doc.Regions {
		var samples []float64
		for range n {
			ms, err := a.probeOnce(ctx, cred, e.ProbeURL)
			if err != nil {
				a.log.Debug("probe failed", "region", e.Name, "err", err)
				continue
			}
			samples = append(samples, ms)
		}
		if len(samples) > 0 {
			out[e.Name] = region.Measurement{MedianMs: region.Median(samples), SamplesMs: samples}
		}
	}
	return out
}

// probeOnce times one sample in milliseconds.
func (a *Agent) probeOnce(ctx context.Context, cred *tls.Certificate, url string) (float64, error) {
	cfg := &tls.Config{RootCAs: a.cfg.Roots, MinVersion: tls.VersionTLS12, ClientSessionCache: nil}
	if cred != nil {
		cfg.Certificates = []tls.Certificate{*cred}
	}
	// A transport of its own with no keep-alive: every sample pays the
	// connection and the handshake, as a device's first contact does.
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("probe %s answered %d", url, resp.StatusCode)
	}
	return float64(elapsed) / float64(time.Millisecond), nil
}

// measureForProvisioning bootstraps and measures when Config.Regions asks
// for it; a failure leaves the allocation to the server's fallbacks.
func (a *Agent) measureForProvisioning(ctx context.Context) map[string]region.Measurement {
	if !a.cfg.Regions {
		return nil
	}
	doc, err := a.Bootstrap(ctx)
	if err != nil {
		a.log.Warn("no region measurements: bootstrap failed", "err", err)
		return nil
	}
	return a.Measure(ctx, doc)
}

// Report measures every region again and sends the measurements with the
// operational credential. When Muster re-homes the device, the new home is
// saved with the credentials and used from then on.
func (a *Agent) Report(ctx context.Context) (*RegionReport, error) {
	cur := a.Credentials()
	if cur == nil {
		return nil, errors.New("agent: report needs operational credentials: provision first")
	}
	doc, err := a.Bootstrap(ctx)
	if err != nil {
		return nil, err
	}
	ms := a.Measure(ctx, doc)
	body, err := json.Marshal(map[string]any{"measurements": ms})
	if err != nil {
		return nil, err
	}
	op := cur.TLSCertificate()
	c := a.client(&op)
	defer c.CloseIdleConnections()
	status, _, answer, err := do(ctx, c, http.MethodPost, strings.TrimSuffix(a.server(), "/")+reportPath, "application/json", body)
	if err != nil {
		return nil, fmt.Errorf("agent: region report: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("agent: region report: server answered %d: %s", status, strings.TrimSpace(string(answer)))
	}
	var rep RegionReport
	if err := json.Unmarshal(answer, &rep); err != nil {
		return nil, fmt.Errorf("agent: region report answer: %w", err)
	}
	if rep.Region != "" && rep.Region != cur.Info.Region {
		if err := a.moveHome(rep.Home, time.Now()); err != nil {
			return &rep, err
		}
	}
	if rep.Renew {
		// The home region has its own CA (or the device left one that
		// has): a renewal at the home's provision URL issues from it.
		a.log.InfoContext(ctx, "renewing: the certificate is not from the home region's CA", "region", rep.Region)
		if _, err := a.Renew(ctx); err != nil {
			return &rep, fmt.Errorf("agent: renew for home region %s: %w", rep.Region, err)
		}
	}
	return &rep, nil
}

// applyRehome takes a rehome command's payload. The command is
// retained, so it comes again at every connection to that node: one given
// before the device's current home was set (by a report, a later command,
// or the provisioning or renewal that issued its certificate) is ignored.
func (a *Agent) applyRehome(ctx context.Context, payload []byte) error {
	var p rehomePayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Region == "" {
		return fmt.Errorf("agent: rehome command: not a home region: %v", err)
	}
	cur := a.Credentials()
	if cur == nil {
		return errors.New("agent: no credentials to move")
	}
	since := cur.Info.HomeSince
	if issued := cur.Certificate.NotBefore.Add(issueBackdate); since.IsZero() || issued.After(since) {
		since = issued
	}
	if !p.MovedAt.IsZero() && !p.MovedAt.After(since.Add(time.Second)) {
		a.log.Debug("rehome command older than the current home; ignored", "region", p.Region, "moved_at", p.MovedAt)
		return nil
	}
	if err := a.moveHome(p.Home, p.MovedAt); err != nil {
		return err
	}
	if p.Renew {
		a.log.InfoContext(ctx, "renewing: the new home region issues from another CA", "region", p.Region)
		if _, err := a.Renew(ctx); err != nil {
			return fmt.Errorf("agent: renew for home region %s: %w", p.Region, err)
		}
	}
	return nil
}

// moveHome records h as the device's home since at: the provisioning
// answer's region and endpoints, saved with the credentials.
func (a *Agent) moveHome(h Home, at time.Time) error {
	cur := a.Credentials()
	if cur == nil {
		return errors.New("agent: no credentials to move")
	}
	next := *cur
	next.Info.Region, next.Info.HomeSince = h.Region, at
	next.Info.Endpoints = map[string]any{"provisioning": h.ProvisionURL, "mqtt": h.MQTTURL}
	if err := a.save(&next); err != nil {
		return err
	}
	a.setCredentials(&next)
	a.log.Info("home region changed", "region", h.Region, "mqtt", h.MQTTURL)
	return nil
}

// Home is the device's home region as the agent knows it (empty before
// provisioning, or without regions).
func (a *Agent) Home() Home {
	c := a.Credentials()
	if c == nil {
		return Home{}
	}
	str := func(k string) string { s, _ := c.Info.Endpoints[k].(string); return s }
	return Home{Region: c.Info.Region, ProvisionURL: str("provisioning"), MQTTURL: str("mqtt")}
}

// server is the device listener to talk to: the home region's once
// Config.Regions is set and Muster named one, else Config.Server.
func (a *Agent) server() string {
	if a.cfg.Regions {
		if h := a.Home(); h.ProvisionURL != "" {
			return h.ProvisionURL
		}
	}
	return a.cfg.Server
}

// regionCredential is what the agent presents to probes and for the
// bootstrap document: the operational certificate once it has one, else
// the birth certificate.
func (a *Agent) regionCredential() *tls.Certificate {
	if c := a.Credentials(); c != nil {
		op := c.TLSCertificate()
		return &op
	}
	if a.cfg.Birth.PrivateKey != nil {
		return &a.cfg.Birth
	}
	return nil
}

// RunReports reports measurements every interval until ctx ends (firmware
// runs it beside Run, in its own goroutine). A failed report is logged and
// retried at the next interval; a move is saved by Report.
func (a *Agent) RunReports(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return errors.New("agent: RunReports needs a positive interval")
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rep, err := a.Report(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("region report failed; retrying at the next interval", "err", err)
		case err == nil && rep.Moved:
			a.log.Info("re-homed by Muster", "region", rep.Region)
		}
	}
}
