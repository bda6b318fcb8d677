package provision

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// Device attributes provisioning maintains.
const (
	// AttrTemplate names the template the device was provisioned with;
	// re-provisioning and renewal use it when the request names none.
	AttrTemplate = "muster.template"
	// AttrTopicsPublish and AttrTopicsSubscribe hold the topic policy,
	// comma-separated, for the MQTT gateway.
	AttrTopicsPublish   = "muster.topics.publish"
	AttrTopicsSubscribe = "muster.topics.subscribe"
)

// provisionedData is the data of device.provisioned, .reprovisioned and
// .certificate_renewed events.
type provisionedData struct {
	RequestID       string            `json:"requestId"`
	Kind            string            `json:"kind"`
	From            fleet.State       `json:"from,omitempty"`
	To              fleet.State       `json:"to,omitempty"`
	Template        string            `json:"template"`
	TemplateVersion int64             `json:"templateVersion"`
	Policy          string            `json:"policy,omitempty"`
	CAID            string            `json:"caId"`
	Serial          string            `json:"serial"`
	Region          string            `json:"region,omitempty"`
	Parameters      map[string]string `json:"parameters,omitempty"`
	RevokesOld      bool              `json:"revokesOld,omitempty"`
	// Allocation is how the home region was chosen, with its numbers.
	Allocation *region.Decision `json:"allocation,omitempty"`
}

// pendingData is the data of provisioning.pending events.
type pendingData struct {
	RequestID       string      `json:"requestId"`
	Kind            string      `json:"kind"`
	From            fleet.State `json:"from,omitempty"`
	To              fleet.State `json:"to,omitempty"`
	Template        string      `json:"template"`
	TemplateVersion int64       `json:"templateVersion"`
}

// request is the record of a.
func (a *attempt) request(status string) store.ProvisioningRequest {
	params := []byte("{}")
	if len(a.params) > 0 {
		params, _ = json.Marshal(a.params) // a map of strings always encodes
	}
	q := store.ProvisioningRequest{
		Requester: a.requester, CSRSHA256: a.csrSHA, DeviceID: a.dev.ID, Kind: a.kind,
		Template: a.tmpl.Name, TemplateVersion: a.tmplVersion, Status: status, Parameters: params,
	}
	if a.prior != nil {
		q.ID, q.CreatedAt = a.prior.ID, a.prior.CreatedAt
	} else {
		// Named here, not by the store, so the history event can cite it.
		q.ID = fleet.NewID("prq_", time.Now())
	}
	return q
}

// queue records a request for manual approval. A first provisioning moves
// the device to pending; a re-provisioning leaves it serving with its
// current certificate until the request is approved and retried.
func (p *Pipeline) queue(ctx context.Context, a *attempt) error {
	from := a.dev.Lifecycle.State
	q := a.request(store.RequestPending)
	_, err := p.batch.commit(ctx, &store.ProvisioningCommit{
		Request: q,
		Actor:   a.actor,
		Update: func(d *fleet.Device) (*store.Change, error) {
			if d.Lifecycle.State != from {
				return nil, ErrConflict
			}
			data := pendingData{RequestID: q.ID, Kind: a.kind, Template: a.tmpl.Name, TemplateVersion: a.tmplVersion}
			if from == fleet.StateManufactured {
				ch, err := d.Move(fleet.StatePending, a.actor, "waiting for manual approval", p.now())
				if err != nil {
					return nil, err
				}
				data.From, data.To = ch.From, ch.To
			}
			return &store.Change{Type: store.EventProvisioningPending, Data: data}, nil
		},
	})
	if errors.Is(err, store.ErrDuplicate) {
		// A concurrent retry of the same request queued it first.
		_, _, err = p.checkPrior(ctx, a)
		return err
	}
	if err != nil {
		return fmt.Errorf("provision: queue for approval: %w", err)
	}
	p.log.InfoContext(ctx, "provisioning request waits for approval", "device", a.dev.ID, "kind", a.kind, "template", a.tmpl.Name)
	stored, _, err := p.st.ProvisioningRequests(ctx, a.requester, a.csrSHA)
	if err != nil || stored == nil {
		return &PendingError{RetryAfter: p.retry}
	}
	return &PendingError{RequestID: stored.ID, RetryAfter: p.retry}
}

// issue signs the operational certificate and commits it with the
// device's new state and configuration.
func (p *Pipeline) issue(ctx context.Context, a *attempt) (*Response, error) {
	cert, signer, err := p.sign(ctx, a)
	if err != nil {
		return nil, err
	}
	rendered := a.tmpl.render(a.renderScope())
	from := a.dev.Lifecycle.State
	policy := ""
	var revoke *int
	if a.kind == store.RequestReprovision {
		policy = a.tmpl.Reprovisioning
		reason := revokeSuperseded
		revoke = &reason
	}
	data := provisionedData{Kind: a.kind, Template: a.tmpl.Name, TemplateVersion: a.tmplVersion, Policy: policy,
		CAID: signer.ID, Serial: store.SerialHex(cert.SerialNumber), Region: p.region, Parameters: a.params, RevokesOld: revoke != nil,
		Allocation: a.home}
	if a.home != nil {
		data.Region = a.home.Name
	}
	q := a.request(store.RequestIssued)
	expect := ""
	if a.prior != nil {
		expect = store.RequestApproved
	}
	now := p.now()
	dev, err := p.commit(ctx, a, &store.ProvisioningCommit{
		Request: q, ExpectStatus: expect, Certificate: certRecord(cert, signer.ID), RevokeOthers: revoke, Actor: a.actor,
		Update: func(d *fleet.Device) (*store.Change, error) {
			if d.Lifecycle.State != from {
				return nil, ErrConflict
			}
			typ := EventProvisioned
			if a.kind == store.RequestReprovision {
				typ = EventReprovisioned
				if from != fleet.StateReprovisioning {
					if _, err := d.Move(fleet.StateReprovisioning, a.actor, "re-provisioning ("+policy+")", now); err != nil {
						return nil, err
					}
				}
			}
			if _, err := d.Move(fleet.StateProvisioned, a.actor, "provisioned with template "+a.tmpl.Name, now); err != nil {
				return nil, err
			}
			data.From, data.To = from, fleet.StateProvisioned
			data.RequestID = q.ID
			p.applyConfig(d, a, rendered, now)
			return &store.Change{Type: typ, Data: data}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	if a.claim != nil {
		if err := p.st.SetClaimDevice(ctx, a.claim.ID, dev.ID); err != nil {
			p.log.WarnContext(ctx, "could not record the device of a claim", "claim", a.claim.ID, "err", err)
		}
	}
	p.log.InfoContext(ctx, "device provisioned", "device", dev.ID, "kind", a.kind, "template", a.tmpl.Name, "serial", data.Serial)
	resp := p.response(dev.ID, cert, signer.Chain, rendered, a.tmpl.Name, a.tmplVersion)
	if a.home != nil {
		p.place(resp, region.Home{Region: a.home.Name, ProvisionURL: a.home.Region.ProvisionURL, MQTTURL: a.home.Region.MQTTURL})
	}
	return resp, nil
}

// place points a response at the device's home region, with a redirect
// when that is not this node's.
func (p *Pipeline) place(resp *Response, h region.Home) {
	resp.Region, resp.Endpoints = h.Region, Endpoints{Provisioning: h.ProvisionURL, MQTT: h.MQTTURL}
	if h.Region != p.region {
		resp.Redirect = &Redirect{Region: h.Region, Endpoints: resp.Endpoints, Reason: RedirectAllocatedElsewhere}
	}
}

// placeStored points a response at the home region stored on the device,
// for answers that do not allocate (retries, renewals).
func (p *Pipeline) placeStored(ctx context.Context, resp *Response, deviceID string) {
	if p.regions == nil {
		return
	}
	dev, err := p.st.GetDevice(ctx, deviceID)
	if err != nil {
		p.log.WarnContext(ctx, "could not read the home region of a device", "device", deviceID, "err", err)
		return
	}
	h, ok, err := p.regions.HomeOf(ctx, dev)
	if err != nil {
		p.log.WarnContext(ctx, "could not read the home region of a device", "device", deviceID, "err", err)
	}
	if ok {
		p.place(resp, h)
	}
}

// sign issues the operational certificate for the CSR's key, from the CA
// of the device's home region: the one allocation just chose, else the
// one in its record (renewals; a re-homed device renews from its new
// home's CA). A region without its own CA, and a device without a home,
// get the shared operational CA.
func (p *Pipeline) sign(ctx context.Context, a *attempt) (*x509.Certificate, *SigningCA, error) {
	home := a.dev.Attributes[region.AttrHome]
	if a.home != nil {
		home = a.home.Name
	}
	signer, err := p.issuer.Operational(ctx, home)
	if err != nil {
		return nil, nil, fmt.Errorf("provision: operational CA: %w", err)
	}
	validity := min(a.tmpl.Certificate.Validity, a.tmpl.Certificate.MaxValidity)
	cert, err := signer.CA.Issue(ctx, pki.OperationalProfile{DeviceID: a.dev.ID, Validity: time.Duration(validity)}, a.csr.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("provision: issue: %w", err)
	}
	return cert, signer, nil
}

// commit writes c and maps what can go wrong between the checks and the
// commit: a concurrent identical request wins and is answered as a retry;
// a key that belongs to another device is refused.
func (p *Pipeline) commit(ctx context.Context, a *attempt, c *store.ProvisioningCommit) (*fleet.Device, error) {
	dev, err := p.batch.commit(ctx, c)
	switch {
	case err == nil:
		return dev, nil
	case errors.Is(err, ErrConflict):
		return nil, ErrConflict
	case errors.Is(err, store.ErrDuplicate), errors.Is(err, store.ErrVersionMismatch):
		return nil, errRaced
	case errors.Is(err, store.ErrKeyReused):
		return nil, refuse("%v", err)
	}
	if fe, ok := errors.AsType[*fleet.FieldError](err); ok {
		return nil, refuse("template %s renders an invalid device record: %v", a.tmpl.Name, fe)
	}
	if te, ok := errors.AsType[*fleet.TransitionError](err); ok {
		return nil, refuse("%v", te)
	}
	return nil, fmt.Errorf("provision: commit: %w", err)
}

// errRaced means a concurrent attempt with the same request committed
// first. The front door's retry gets that attempt's answer; the pipeline
// answers 409 meanwhile, which every client retries.
var errRaced = fmt.Errorf("a concurrent identical request committed first: %w", ErrConflict)

// applyConfig writes the rendered template into the device record, by
// kind and policy: a first provisioning merges it into what the factory
// recorded, reset replaces attributes and groups with it, migrate keeps
// the record as it is.
func (p *Pipeline) applyConfig(d *fleet.Device, a *attempt, r Rendered, now time.Time) {
	switch {
	case a.kind == store.RequestReprovision && a.tmpl.Reprovisioning == ReprovisionMigrate:
	case a.kind == store.RequestReprovision && a.tmpl.Reprovisioning == ReprovisionReset:
		d.Attributes, d.Inventory.Groups = maps.Clone(r.Attributes), slices.Clone(r.Groups)
		setTopics(d, r.Topics)
	default:
		if d.Attributes == nil && len(r.Attributes) > 0 {
			d.Attributes = map[string]string{}
		}
		maps.Copy(d.Attributes, r.Attributes)
		for _, g := range r.Groups {
			if !slices.Contains(d.Inventory.Groups, g) {
				d.Inventory.Groups = append(d.Inventory.Groups, g)
			}
		}
		setTopics(d, r.Topics)
	}
	if d.Attributes == nil {
		d.Attributes = map[string]string{}
	}
	d.Attributes[AttrTemplate] = a.tmpl.Name
	home := p.region
	if a.home != nil {
		home = a.home.Name
		region.SetHome(d, a.home)
	}
	d.Provisioning.Registration = fleet.Registration{RegisteredAt: now, System: "muster", Data: map[string]string{
		"template": a.tmpl.Name, "templateVersion": strconv.FormatInt(a.tmplVersion, 10), "region": home,
	}}
	d.Provisioning.Security.KeyType = a.keyType
}

func setTopics(d *fleet.Device, t TopicPolicy) {
	for key, list := range map[string][]string{AttrTopicsPublish: t.Publish, AttrTopicsSubscribe: t.Subscribe} {
		if len(list) == 0 {
			continue
		}
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		d.Attributes[key] = strings.Join(list, ",")
	}
}

// answerIssued answers a retry of an issued request with the certificate
// it got: never a second one.
func (p *Pipeline) answerIssued(ctx context.Context, a *attempt, q *store.ProvisioningRequest) (*Response, error) {
	rec, err := p.st.IssuedCertificate(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("provision: certificate of request %s: %w", q.ID, err)
	}
	cert, err := parseCertPEM(rec.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("provision: stored certificate of request %s: %w", q.ID, err)
	}
	chain, err := p.issuer.Chain(ctx, q.CAID)
	if err != nil {
		return nil, fmt.Errorf("provision: chain of CA %s: %w", q.CAID, err)
	}
	var rendered Rendered
	if a.tmpl != nil && a.dev != nil && q.Kind != store.RequestRenew {
		if err := decodeParams(q.Parameters, &a.params); err != nil {
			return nil, err
		}
		rendered = a.tmpl.render(a.renderScope())
	}
	resp := p.response(q.DeviceID, cert, chain, rendered, q.Template, q.TemplateVersion)
	p.placeStored(ctx, resp, q.DeviceID)
	return resp, nil
}

// response builds the answer for an issued certificate.
func (p *Pipeline) response(deviceID string, cert *x509.Certificate, chain []*x509.Certificate, r Rendered, tmpl string, version int64) *Response {
	resp := &Response{
		DeviceID: deviceID, Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		NotAfter: cert.NotAfter.UTC(), Region: p.region, Endpoints: p.endpoints, ServedBy: p.region, Configuration: r,
		Template: tmpl, TemplateVersion: version, cert: cert.Raw,
	}
	var b strings.Builder
	for _, c := range chain {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		resp.chain = append(resp.chain, c.Raw)
	}
	resp.CAChain = b.String()
	return resp
}

// certRecord is the certificates row of an issued operational certificate.
func certRecord(cert *x509.Certificate, caID string) *store.Certificate {
	fp, _ := pki.PublicKeyFingerprint(cert.PublicKey) // the key was fingerprinted when checked
	return &store.Certificate{
		CAID: caID, Serial: store.SerialHex(cert.SerialNumber), Kind: store.CertOperational, Fingerprint: fp,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
	}
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func decodeParams(raw json.RawMessage, dst *map[string]string) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("provision: stored parameters: %w", err)
	}
	return nil
}
