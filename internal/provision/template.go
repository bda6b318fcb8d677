package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/region"
)

// Approval modes of a template.
const (
	// ApprovalAuto issues as soon as every check passes.
	ApprovalAuto = "auto"
	// ApprovalManual queues the request until an operator approves it.
	ApprovalManual = "manual"
	// ApprovalHook lets the pre-provisioning hook's answer decide.
	ApprovalHook = "hook"
)

// Re-provisioning policies of a template: what happens when a device that
// was provisioned already comes back with its birth certificate.
const (
	// ReprovisionMigrate keeps the record, attributes and groups.
	ReprovisionMigrate = "migrate"
	// ReprovisionReset goes back to the template's initial configuration.
	ReprovisionReset = "reset"
	// ReprovisionNever refuses.
	ReprovisionNever = "never"
)

// Parameter types.
const (
	ParamString = "string"
	ParamInt    = "int"
	ParamBool   = "bool"
	ParamEnum   = "enum"
)

// Key types a template may allow for operational keys.
var keyTypes = []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}

// Template limits and defaults.
const (
	// DefaultHookTimeout bounds a pre-provisioning hook call.
	DefaultHookTimeout = 5 * time.Second
	maxHookTimeout     = 60 * time.Second
	// DefaultMaxValidity caps operational certificates of templates
	// that do not say otherwise.
	DefaultMaxValidity = Duration(730 * 24 * time.Hour)
	maxParameters      = 64
)

// Template says how devices provision: who may use it, which parameters a
// request may carry, what the device record and its configuration become,
// what the operational certificate looks like, and which approval and
// re-provisioning rules apply. Templates are versioned by the store; every
// certificate records the name and version it was issued under.
type Template struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Factories and Models restrict who may use the template; empty
	// means any.
	Factories  []string    `json:"factories,omitempty"`
	Models     []string    `json:"models,omitempty"`
	Parameters []Parameter `json:"parameters,omitempty"`
	// Device is what the device record gets; its strings are rendered
	// (see Render).
	Device      DeviceConfig      `json:"device,omitzero"`
	Certificate CertificatePolicy `json:"certificate,omitzero"`
	Approval    string            `json:"approval,omitempty"`
	// Reprovisioning is migrate (default), reset or never.
	Reprovisioning string        `json:"reprovisioning,omitempty"`
	Renewal        RenewalPolicy `json:"renewal,omitzero"`
	Hook           *Hook         `json:"hook,omitempty"`
	// AutoRegister lets a device whose record does not exist register
	// itself, when its birth certificate names an allowed factory and
	// model.
	AutoRegister bool `json:"autoRegister,omitempty"`
	// RateLimit overrides the node's attempt limit per birth identity.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// Region says how devices get their home region; lowest-latency
	// when absent (docs/regions.md).
	Region *region.Policy `json:"region,omitempty"`
}

// Parameter is one typed value a provisioning request may carry.
type Parameter struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Values   []string `json:"values,omitempty"` // the choices of an enum
	Default  any      `json:"default,omitempty"`
	Required bool     `json:"required,omitempty"`
	// Description is for the people writing requests.
	Description string `json:"description,omitempty"`
}

// DeviceConfig is what provisioning writes into the device record and
// returns to the device.
type DeviceConfig struct {
	Attributes map[string]string `json:"attributes,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Topics     TopicPolicy       `json:"topics,omitzero"`
	// Configuration is returned to the device, not stored on its record.
	Configuration map[string]string `json:"configuration,omitempty"`
}

// TopicPolicy names the MQTT topics a device may publish and subscribe to.
type TopicPolicy struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
}

// CertificatePolicy shapes operational certificates. Subject and SAN are
// always built from the device id (pki.OperationalProfile), never from the
// CSR.
type CertificatePolicy struct {
	// Validity defaults to one year, capped by MaxValidity.
	Validity    Duration `json:"validity,omitempty"`
	MaxValidity Duration `json:"maxValidity,omitempty"`
	// KeyTypes allowed for the device's operational key; default
	// ecdsa-p256 and ecdsa-p384.
	KeyTypes []string `json:"keyTypes,omitempty"`
}

// RenewalPolicy governs renewal with an operational certificate.
type RenewalPolicy struct {
	// AllowExpired lets a device renew within ExpiredGrace after its
	// certificate expired; otherwise it must re-provision.
	AllowExpired bool     `json:"allowExpired,omitempty"`
	ExpiredGrace Duration `json:"expiredGrace,omitempty"`
	// RevokeOld revokes the renewed certificate at once instead of
	// letting it run out.
	RevokeOld bool `json:"revokeOld,omitempty"`
}

// Hook is the pre-provisioning hook.
type Hook struct {
	URL     string   `json:"url"`
	Timeout Duration `json:"timeout,omitempty"`
}

// RateLimit is a token bucket: Burst attempts at once, one more every
// Every.
type RateLimit struct {
	Burst int      `json:"burst"`
	Every Duration `json:"every"`
}

// ParseTemplate reads a template in YAML or JSON (JSON is YAML) strictly:
// unknown fields are errors, so a misspelt policy never silently falls
// back to a default. The result is validated.
func ParseTemplate(data []byte) (*Template, error) {
	var generic any
	if err := yaml.Unmarshal(data, &generic); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	js, err := json.Marshal(generic)
	if err != nil {
		return nil, fmt.Errorf("template: %w (keys must be strings)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var t Template
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate checks the template as a whole and fills in defaults. Errors
// are *fleet.FieldError naming the field.
func (t *Template) Validate() error {
	if err := fleet.ValidName("name", t.Name); err != nil {
		return err
	}
	for i, f := range t.Factories {
		if err := fleet.ValidName(fmt.Sprintf("factories[%d]", i), f); err != nil {
			return err
		}
	}
	for i, m := range t.Models {
		if err := fleet.ValidName(fmt.Sprintf("models[%d]", i), m); err != nil {
			return err
		}
	}
	if err := t.validateParameters(); err != nil {
		return err
	}
	if err := t.validateDevice(); err != nil {
		return err
	}
	if err := t.validateCertificate(); err != nil {
		return err
	}
	if t.Approval == "" {
		t.Approval = ApprovalAuto
	}
	if !slices.Contains([]string{ApprovalAuto, ApprovalManual, ApprovalHook}, t.Approval) {
		return fieldErr("approval", "%q is not auto, manual or hook", t.Approval)
	}
	if t.Reprovisioning == "" {
		t.Reprovisioning = ReprovisionMigrate
	}
	if !slices.Contains([]string{ReprovisionMigrate, ReprovisionReset, ReprovisionNever}, t.Reprovisioning) {
		return fieldErr("reprovisioning", "%q is not migrate, reset or never", t.Reprovisioning)
	}
	if t.Renewal.ExpiredGrace < 0 || (t.Renewal.ExpiredGrace > 0 && !t.Renewal.AllowExpired) {
		return fieldErr("renewal.expiredGrace", "needs allowExpired and a positive duration")
	}
	if err := t.validateHook(); err != nil {
		return err
	}
	if t.Approval == ApprovalHook && t.Hook == nil {
		return fieldErr("hook", "approval mode hook needs a hook URL")
	}
	if r := t.RateLimit; r != nil && (r.Burst < 1 || r.Every <= 0) {
		return fieldErr("rateLimit", "needs burst of at least 1 and a positive every, such as {burst: 5, every: 1m}")
	}
	if t.Region != nil {
		if err := t.Region.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (t *Template) validateParameters() error {
	if len(t.Parameters) > maxParameters {
		return fieldErr("parameters", "at most %d parameters", maxParameters)
	}
	seen := map[string]bool{}
	for i := range t.Parameters {
		p := &t.Parameters[i]
		field := fmt.Sprintf("parameters[%d]", i)
		if err := checkIdent(p.Name); err != nil {
			return fieldErr(field+".name", "%v", err)
		}
		if seen[p.Name] {
			return fieldErr(field+".name", "parameter %q is declared twice", p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case ParamString, ParamInt, ParamBool:
			if len(p.Values) > 0 {
				return fieldErr(field+".values", "only enum parameters have values")
			}
		case ParamEnum:
			if len(p.Values) == 0 {
				return fieldErr(field+".values", "an enum needs its values")
			}
		default:
			return fieldErr(field+".type", "%q is not string, int, bool or enum", p.Type)
		}
		if p.Default != nil {
			if _, err := p.value(p.Default); err != nil {
				return fieldErr(field+".default", "%v", err)
			}
		}
	}
	return nil
}

func (t *Template) validateDevice() error {
	check := func(field, s string) error {
		if err := checkPlaceholders(s, t.Parameters); err != nil {
			return fieldErr(field, "%v", err)
		}
		return nil
	}
	for k, v := range t.Device.Attributes {
		if err := check("device.attributes."+k, v); err != nil {
			return err
		}
	}
	for k, v := range t.Device.Configuration {
		if err := check("device.configuration."+k, v); err != nil {
			return err
		}
	}
	for name, list := range map[string][]string{"device.groups": t.Device.Groups, "device.topics.publish": t.Device.Topics.Publish, "device.topics.subscribe": t.Device.Topics.Subscribe} {
		for i, v := range list {
			if err := check(fmt.Sprintf("%s[%d]", name, i), v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Template) validateCertificate() error {
	c := &t.Certificate
	if c.MaxValidity == 0 {
		c.MaxValidity = DefaultMaxValidity
	}
	if c.Validity == 0 {
		c.Validity = min(Duration(365*24*time.Hour), c.MaxValidity)
	}
	switch {
	case c.MaxValidity < Duration(time.Hour):
		return fieldErr("certificate.maxValidity", "must be at least 1h")
	case c.Validity < Duration(time.Hour):
		return fieldErr("certificate.validity", "must be at least 1h")
	case c.Validity > c.MaxValidity:
		return fieldErr("certificate.validity", "%s is longer than maxValidity %s", c.Validity, c.MaxValidity)
	}
	if len(c.KeyTypes) == 0 {
		c.KeyTypes = []string{"ecdsa-p256", "ecdsa-p384"}
	}
	for i, k := range c.KeyTypes {
		if !slices.Contains(keyTypes, k) {
			return fieldErr(fmt.Sprintf("certificate.keyTypes[%d]", i), "%q is not one of %s", k, strings.Join(keyTypes, ", "))
		}
	}
	return nil
}

func (t *Template) validateHook() error {
	if t.Hook == nil {
		return nil
	}
	u, err := url.Parse(t.Hook.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fieldErr("hook.url", "%q is not an http or https URL", t.Hook.URL)
	}
	if t.Hook.Timeout == 0 {
		t.Hook.Timeout = Duration(DefaultHookTimeout)
	}
	if t.Hook.Timeout < 0 || time.Duration(t.Hook.Timeout) > maxHookTimeout {
		return fieldErr("hook.timeout", "must be between 1ms and %s", maxHookTimeout)
	}
	return nil
}

// allows reports whether the template serves a device of factory and model.
func (t *Template) allows(factory, model string) bool {
	return (len(t.Factories) == 0 || slices.Contains(t.Factories, factory)) &&
		(len(t.Models) == 0 || slices.Contains(t.Models, model))
}

func fieldErr(field, format string, args ...any) error {
	return &fleet.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// checkIdent accepts the names a placeholder can refer to.
func checkIdent(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '-')) {
			return fmt.Errorf("%q may contain only letters, digits, _ and - and must start with a letter or _", s)
		}
	}
	return nil
}
