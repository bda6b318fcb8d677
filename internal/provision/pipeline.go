package provision

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// Store is the registry the pipeline reads and commits to; *store.Store
// implements it.
type Store interface {
	DeviceByBirthKey(ctx context.Context, fingerprint string) (*fleet.Device, error)
	BirthCertificates(ctx context.Context, deviceIDs []string) (map[string]store.Certificate, error)
	FindDevice(ctx context.Context, factory, model, serial string) (*fleet.Device, error)
	GetDevice(ctx context.Context, id string) (*fleet.Device, error)
	CreateDevice(ctx context.Context, d *fleet.Device, actor string) error
	Template(ctx context.Context, name string) (*store.TemplateRecord, error)
	ProvisioningRequests(ctx context.Context, requester, csrSHA256 string) (*store.ProvisioningRequest, []store.ProvisioningRequest, error)
	CommitProvisionings(ctx context.Context, cs []*store.ProvisioningCommit) ([]*fleet.Device, []error, error)
	IssuedCertificate(ctx context.Context, q *store.ProvisioningRequest) (*store.Certificate, error)
	RecordDeviceEvent(ctx context.Context, deviceID, actor string, ch store.Change) error
	RedeemClaim(ctx context.Context, hash, csrSHA256 string, now time.Time) (*store.Claim, error)
	SetClaimDevice(ctx context.Context, id, deviceID string) error
}

var _ Store = (*store.Store)(nil)

// Regions allocates devices to regions and says where a device's home is.
type Regions interface {
	Allocate(ctx context.Context, p *region.Policy, in region.Input) (*region.Decision, error)
	HomeOf(ctx context.Context, dev *fleet.Device) (region.Home, bool, error)
}

var _ Regions = (*region.Service)(nil)

// Device history events the pipeline writes.
const (
	EventProvisioned   = "device.provisioned"
	EventReprovisioned = "device.reprovisioned"
	EventRenewed       = "device.certificate_renewed"
	EventRefused       = "provisioning.refused"
)

// DefaultPendingRetryAfter is the Retry-After of a request that waits for
// approval.
const DefaultPendingRetryAfter = 10 * time.Second

// revokeSuperseded is the RFC 5280 reason for the certificates a
// re-provisioning or renewal replaces.
const revokeSuperseded = 4

// Config configures a Pipeline.
type Config struct {
	// Store and Issuer are required.
	Store  Store
	Issuer Issuer
	// Hook calls pre-provisioning hooks; HTTPHook{} when nil.
	Hook HookCaller
	// Region is this node's region: devices get it, and Endpoints, when
	// Regions is nil or no region is enabled.
	Region string
	// Endpoints are returned to provisioned devices of this node's region.
	Endpoints Endpoints
	// Regions allocates home regions by the template's policy;
	// *region.Service implements it. Nil gives every device Region.
	Regions Regions
	// RateLimit is the attempt limit per requester of templates without
	// one; DefaultRateBurst and DefaultRateEvery when zero.
	RateLimit RateLimit
	// PendingRetryAfter defaults to DefaultPendingRetryAfter.
	PendingRetryAfter time.Duration
	// TemplateTTL defaults to DefaultTemplateTTL.
	TemplateTTL time.Duration
	Logger      *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Pipeline provisions, re-provisions and renews devices. It is safe for
// concurrent use; one serves a node.
type Pipeline struct {
	st        Store
	issuer    Issuer
	hook      HookCaller
	region    string
	endpoints Endpoints
	regions   Regions
	rate      RateLimit
	retry     time.Duration
	log       *slog.Logger
	now       func() time.Time
	limiter   *limiter
	templates *templateCache
	batch     *batcher
}

// New returns a pipeline for cfg.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil || cfg.Issuer == nil {
		return nil, errors.New("provision: a pipeline needs a store and an issuer")
	}
	p := &Pipeline{
		st: cfg.Store, issuer: cfg.Issuer, hook: cfg.Hook, region: cfg.Region, endpoints: cfg.Endpoints, regions: cfg.Regions,
		rate: cfg.RateLimit, retry: cfg.PendingRetryAfter, log: cfg.Logger, now: cfg.Now,
		limiter: newLimiter(), templates: &templateCache{ttl: cfg.TemplateTTL}, batch: &batcher{st: cfg.Store},
	}
	if p.hook == nil {
		p.hook = HTTPHook{}
	}
	if p.rate.Burst <= 0 || p.rate.Every <= 0 {
		p.rate = RateLimit{Burst: DefaultRateBurst, Every: Duration(DefaultRateEvery)}
	}
	if p.retry <= 0 {
		p.retry = DefaultPendingRetryAfter
	}
	if p.templates.ttl <= 0 {
		p.templates.ttl = DefaultTemplateTTL
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// attempt is one request on its way through the pipeline.
type attempt struct {
	req *Request
	// requester keys idempotency, in-flight checks and rate limits.
	requester string
	actor     string
	kind      string
	// What the credential says about the device.
	factory, model, serial, hwrev string
	birthFP, birthPEM             string
	claim                         *store.Claim

	dev         *fleet.Device
	tmpl        *Template
	tmplVersion int64
	csr         *x509.CertificateRequest
	csrSHA      string
	keyType     string
	params      map[string]string
	// prior is the approved request this retry completes.
	prior *store.ProvisioningRequest
	// home is the region allocation's decision; nil without regions.
	home *region.Decision
}

// Provision runs a request through the pipeline. It returns the response,
// or one of ErrRefused (the reason is logged and recorded, never
// returned), ErrConflict, *PendingError, *RateLimitError or
// *BadRequestError; anything else is a server fault.
func (p *Pipeline) Provision(ctx context.Context, req *Request) (*Response, error) {
	a := &attempt{req: req}
	resp, err := p.run(ctx, a)
	return resp, p.outcome(ctx, a, err)
}

// outcome logs a refusal with its reason, records it in the device's
// history and hides it from the device.
func (p *Pipeline) outcome(ctx context.Context, a *attempt, err error) error {
	r, ok := errors.AsType[*refusal](err)
	if !ok {
		if err != nil && !isAnswer(err) {
			p.log.ErrorContext(ctx, "provisioning failed", "requester", a.requester, "err", err)
		}
		return err
	}
	attrs := []any{"reason", r.reason, "requester", a.requester, "kind", a.kind, "serial", a.serial}
	if a.dev != nil {
		attrs = append(attrs, "device", a.dev.ID)
		ev := store.Change{Type: EventRefused, Data: refusedData{Kind: a.kind, Reason: r.reason, Requester: a.requester, CSRSHA256: a.csrSHA}}
		if err := p.st.RecordDeviceEvent(ctx, a.dev.ID, a.actor, ev); err != nil {
			p.log.WarnContext(ctx, "could not record a refused provisioning in the device history", "device", a.dev.ID, "err", err)
		}
	}
	p.log.InfoContext(ctx, "provisioning refused", attrs...)
	return ErrRefused
}

// isAnswer reports whether err is one of the pipeline's answers rather
// than a fault.
func isAnswer(err error) bool {
	_, pending := errors.AsType[*PendingError](err)
	_, limited := errors.AsType[*RateLimitError](err)
	_, bad := errors.AsType[*BadRequestError](err)
	return pending || limited || bad || errors.Is(err, ErrConflict) || errors.Is(err, ErrRefused)
}

// refusedData is the data of a provisioning.refused event.
type refusedData struct {
	Kind      string `json:"kind,omitempty"`
	Reason    string `json:"reason"`
	Requester string `json:"requester,omitempty"`
	CSRSHA256 string `json:"csrSha256,omitempty"`
}

func (p *Pipeline) run(ctx context.Context, a *attempt) (*Response, error) {
	if len(a.req.CSR) == 0 {
		return nil, &BadRequestError{Message: "a CSR is required"}
	}
	sum := sha256.Sum256(a.req.CSR)
	a.csrSHA = hex.EncodeToString(sum[:])
	id := a.req.Identity
	switch {
	case a.req.ClaimSecret != "" && id.Kind == "" && !a.req.Renew:
		if err := p.identifyClaim(ctx, a); err != nil {
			return nil, err
		}
	case id.Kind == pki.IdentityBirth && !a.req.Renew:
		if err := p.identifyBirth(ctx, a); err != nil {
			return nil, err
		}
	case id.Kind == pki.IdentityOperational && a.req.Renew:
		return p.renew(ctx, a)
	default:
		return nil, refuse("a %q identity cannot be used for this request (renew=%t, claim=%t)", id.Kind, a.req.Renew, a.req.ClaimSecret != "")
	}
	if err := p.resolveTemplateAndDevice(ctx, a); err != nil {
		return nil, err
	}
	if err := p.limit(a); err != nil {
		return nil, err
	}
	if resp, done, err := p.checkPrior(ctx, a); done || err != nil {
		return resp, err
	}
	if err := p.checkState(a); err != nil {
		return nil, err
	}
	if err := p.parameters(a); err != nil {
		return nil, err
	}
	if err := p.checkCSR(ctx, a); err != nil {
		return nil, err
	}
	if a.prior == nil {
		if err := p.callHook(ctx, a); err != nil {
			return nil, err
		}
		if a.tmpl.Approval == ApprovalManual {
			return nil, p.queue(ctx, a)
		}
	}
	if err := p.allocate(ctx, a); err != nil {
		return nil, err
	}
	return p.issue(ctx, a)
}

// allocate decides the device's home region by the template's policy.
func (p *Pipeline) allocate(ctx context.Context, a *attempt) error {
	if p.regions == nil {
		return nil
	}
	in := region.Input{DeviceID: a.dev.ID, Factory: a.dev.Identity.Factory, Model: a.dev.Identity.Model, Serial: a.dev.Identity.Serial,
		Template: a.tmpl.Name, Home: a.dev.Attributes[region.AttrHome], Measurements: a.req.Measurements, Location: a.req.Location}
	if l := a.dev.Inventory.Location; in.Location == nil && l.Lat != nil && l.Lon != nil {
		in.Location = &region.Location{Lat: *l.Lat, Lon: *l.Lon}
	}
	d, err := p.regions.Allocate(ctx, a.tmpl.Region, in)
	if err != nil {
		return fmt.Errorf("provision: allocate region: %w", err)
	}
	a.home = d
	return nil
}

// identifyBirth reads the birth identity and finds the device it belongs
// to, by the birth certificate's key or, failing that, by its factory,
// model and serial.
func (p *Pipeline) identifyBirth(ctx context.Context, a *attempt) error {
	id := a.req.Identity
	if id.Certificate == nil {
		return refuse("birth identity without a certificate")
	}
	requester, fp, err := birthRequester(id)
	if err != nil {
		return refuse("birth certificate key: %v", err)
	}
	a.birthFP, a.requester = fp, requester
	a.birthPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Certificate.Raw}))
	a.factory, a.model, a.serial, a.hwrev = id.Factory, id.Model, id.Serial, id.HardwareRevision
	a.actor = "device/" + id.Factory + "/" + id.Serial
	if id.External {
		a.actor = "device/external/" + id.Serial
	}
	dev, err := p.st.DeviceByBirthKey(ctx, fp)
	switch {
	case err == nil:
		a.dev = dev
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("provision: look up birth certificate: %w", err)
	}
	if a.dev != nil {
		a.factory, a.model, a.serial = a.dev.Identity.Factory, a.dev.Identity.Model, a.dev.Identity.Serial
	}
	return nil
}

// birthRequester is the requester key of a birth identity: its key's
// fingerprint, which is what stays the same across retries.
func birthRequester(id pki.Identity) (requester, fingerprint string, err error) {
	fp, err := pki.PublicKeyFingerprint(id.Certificate.PublicKey)
	if err != nil {
		return "", "", err
	}
	return "birth:" + fp, fp, nil
}

// identifyClaim redeems an installer's claim in place of a birth identity.
func (p *Pipeline) identifyClaim(ctx context.Context, a *attempt) error {
	sum := sha256.Sum256([]byte(a.req.ClaimSecret))
	hash := hex.EncodeToString(sum[:])
	// Limit guesses per secret before touching the database.
	a.requester = "claim-secret:" + hash
	if err := p.limitWith(a, p.rate); err != nil {
		return err
	}
	claim, err := p.st.RedeemClaim(ctx, hash, a.csrSHA, p.now())
	if errors.Is(err, store.ErrNotFound) {
		return refuse("claim is unknown, expired or used by another request")
	}
	if err != nil {
		return fmt.Errorf("provision: redeem claim: %w", err)
	}
	a.claim, a.requester, a.actor = claim, "claim:"+claim.ID, "claim/"+claim.ID
	a.factory, a.model, a.serial = claim.Factory, claim.Model, claim.Serial
	return nil
}

// resolveTemplateAndDevice picks the template and finds the device, or
// registers it when the template allows.
func (p *Pipeline) resolveTemplateAndDevice(ctx context.Context, a *attempt) error {
	if a.dev == nil && a.factory != "" && a.model != "" {
		d, err := p.st.FindDevice(ctx, a.factory, a.model, a.serial)
		switch {
		case err == nil:
			a.dev = d
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("provision: find device: %w", err)
		}
	}
	name := a.req.Template
	if a.claim != nil && a.claim.Template != "" {
		name = a.claim.Template // the installer's choice binds the device
	}
	if name == "" && a.dev != nil {
		name = a.dev.Attributes[AttrTemplate]
	}
	if name == "" {
		name = DefaultTemplate
	}
	t, v, err := p.templates.get(ctx, p.st, name, p.now())
	if errors.Is(err, errNoTemplate) {
		return refuse("%v", err)
	}
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	a.tmpl, a.tmplVersion = t, v
	if !t.allows(a.factory, a.model) {
		return refuse("template %s does not serve factory %q model %q", t.Name, a.factory, a.model)
	}
	if a.dev != nil {
		return nil
	}
	switch {
	case !t.AutoRegister:
		return refuse("no device is registered as factory %q model %q serial %q, and template %s does not auto-register", a.factory, a.model, a.serial, t.Name)
	case a.factory == "" || a.model == "" || a.serial == "":
		return refuse("cannot auto-register: the credential names no factory, model or serial")
	}
	d := &fleet.Device{Identity: fleet.Identity{Factory: a.factory, Model: a.model, Serial: a.serial, HardwareRevision: a.hwrev}}
	err = p.st.CreateDevice(ctx, d, a.actor)
	if errors.Is(err, store.ErrDuplicate) {
		// Registered by a concurrent attempt of the same device.
		d, err = p.st.FindDevice(ctx, a.factory, a.model, a.serial)
	}
	if err != nil {
		if _, bad := errors.AsType[*fleet.FieldError](err); bad {
			return refuse("cannot auto-register: %v", err)
		}
		return fmt.Errorf("provision: auto-register: %w", err)
	}
	a.dev = d
	return nil
}

// limit applies the template's (or the node's) attempt limit.
func (p *Pipeline) limit(a *attempt) error {
	rl := p.rate
	if a.tmpl != nil && a.tmpl.RateLimit != nil {
		rl = *a.tmpl.RateLimit
	}
	return p.limitWith(a, rl)
}

func (p *Pipeline) limitWith(a *attempt, rl RateLimit) error {
	if ok, wait := p.limiter.allow(a.requester, rl, p.now()); !ok {
		p.log.Info("provisioning rate-limited", "requester", a.requester, "retry_after", wait)
		return &RateLimitError{RetryAfter: wait}
	}
	return nil
}

// checkPrior answers a retry of a known request, and refuses a second CSR
// while another one is in flight.
func (p *Pipeline) checkPrior(ctx context.Context, a *attempt) (*Response, bool, error) {
	same, inFlight, err := p.st.ProvisioningRequests(ctx, a.requester, a.csrSHA)
	if err != nil {
		return nil, true, fmt.Errorf("provision: %w", err)
	}
	if same != nil {
		switch same.Status {
		case store.RequestIssued:
			resp, err := p.answerIssued(ctx, a, same)
			return resp, true, err
		case store.RequestPending:
			return nil, true, &PendingError{RequestID: same.ID, RetryAfter: p.retry}
		case store.RequestRejected:
			return nil, true, refuse("request %s was rejected by %s: %s", same.ID, same.DecidedBy, same.Reason)
		case store.RequestApproved:
			a.prior = same
		}
	}
	if len(inFlight) > 0 {
		return nil, true, ErrConflict
	}
	return nil, false, nil
}

// checkState decides between provisioning and re-provisioning from the
// device's state and the template's policy.
func (p *Pipeline) checkState(a *attempt) error {
	switch st := a.dev.Lifecycle.State; st {
	case fleet.StateManufactured, fleet.StatePending:
		a.kind = store.RequestProvision
	case fleet.StateProvisioned, fleet.StateActive, fleet.StateReprovisioning:
		a.kind = store.RequestReprovision
		if a.tmpl.Reprovisioning == ReprovisionNever {
			return refuse("template %s does not allow re-provisioning a %s device", a.tmpl.Name, st)
		}
	case fleet.StateQuarantined, fleet.StateSuspended:
		// A device must not lift its own quarantine or suspension by
		// re-provisioning; an operator moves it to reprovisioning first.
		return refuse("a %s device re-provisions only after an operator moves it to reprovisioning", st)
	default:
		return refuse("a %s device cannot be provisioned", st)
	}
	return nil
}

// parameters resolves the request's parameters, or takes those the
// approved request was queued with.
func (p *Pipeline) parameters(a *attempt) error {
	if a.prior != nil {
		return decodeParams(a.prior.Parameters, &a.params)
	}
	params, err := a.tmpl.resolveParameters(a.req.Parameters, nil)
	if err != nil {
		return &BadRequestError{Message: err.Error()}
	}
	a.params = params
	return nil
}

// callHook asks the template's pre-provisioning hook. An error or a
// timeout denies.
func (p *Pipeline) callHook(ctx context.Context, a *attempt) error {
	h := a.tmpl.Hook
	if h == nil {
		return nil
	}
	req := &HookRequest{
		Kind: a.kind,
		Device: HookDevice{ID: a.dev.ID, Factory: a.dev.Identity.Factory, Model: a.dev.Identity.Model, Serial: a.dev.Identity.Serial,
			HardwareRevision: a.dev.Identity.HardwareRevision, State: string(a.dev.Lifecycle.State)},
		BirthCertificate: a.birthPEM,
		Parameters:       a.params,
		Template:         HookTemplate{Name: a.tmpl.Name, Version: a.tmplVersion},
		Region:           p.region,
	}
	ans, err := p.hook.CallHook(ctx, h.URL, time.Duration(h.Timeout), req)
	if err != nil {
		return refuse("pre-provisioning hook failed (denied): %v", err)
	}
	if !ans.Allow {
		return refuse("pre-provisioning hook denied: %s", ans.Reason)
	}
	if len(ans.ParameterOverrides) > 0 {
		params, err := a.tmpl.resolveParameters(a.req.Parameters, ans.ParameterOverrides)
		if err != nil {
			return refuse("pre-provisioning hook overrides: %v", err)
		}
		a.params = params
	}
	return nil
}

// renderScope is what the template's placeholders see for a.
func (a *attempt) renderScope() renderScope {
	return renderScope{params: a.params, device: map[string]string{
		"id": a.dev.ID, "serial": a.dev.Identity.Serial, "model": a.dev.Identity.Model,
		"factory": a.dev.Identity.Factory, "hardwareRevision": a.dev.Identity.HardwareRevision,
	}}
}
