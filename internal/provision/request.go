package provision

import (
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/region"
)

// Request is one provisioning or renewal request, whatever door it came
// through.
type Request struct {
	// Identity is what the device proved over mTLS: a birth identity to
	// provision or re-provision, an operational one to renew. Zero when
	// ClaimSecret is set.
	Identity pki.Identity
	// ClaimSecret is an installer's claim, used in place of a birth
	// identity by a device that has none.
	ClaimSecret string
	// Renew asks for renewal; it needs an operational identity.
	Renew bool
	// Template names the template; empty means the one the device record
	// names (attribute muster.template), else "default".
	Template string
	// CSR is the PKCS#10 request in DER.
	CSR []byte
	// Parameters are the template parameters the device sends.
	Parameters map[string]any
	// Measurements are the device's round-trip times to regional probes,
	// by region name, for region allocation.
	Measurements map[string]region.Measurement
	// Location is where the device says it is (geo allocation).
	Location *region.Location
}

// Response is what a provisioned device gets.
type Response struct {
	DeviceID  string `json:"deviceId"`
	RequestID string `json:"requestId"`
	// Certificate is the operational certificate in PEM; CAChain the
	// issuing CA and the CAs above it, in PEM.
	Certificate string    `json:"certificate"`
	CAChain     string    `json:"caChain"`
	NotAfter    time.Time `json:"notAfter"`
	// Region is the device's home region and Endpoints its endpoints.
	Region    string    `json:"region,omitempty"`
	Endpoints Endpoints `json:"endpoints,omitzero"`
	// ServedBy is the region of the node that answered; Redirect is set
	// when that is not the device's home, to tell it where to go.
	ServedBy string    `json:"servedBy,omitempty"`
	Redirect *Redirect `json:"redirect,omitempty"`
	// Configuration is the rendered template: attributes, groups, topic
	// policy and device configuration.
	Configuration   Rendered `json:"configuration,omitzero"`
	Template        string   `json:"template"`
	TemplateVersion int64    `json:"templateVersion"`

	// cert is the issued certificate, for front doors that need DER.
	cert []byte
	// chain is CAChain as DER certificates.
	chain [][]byte
}

// CertificateDER returns the issued certificate in DER.
func (r *Response) CertificateDER() []byte { return r.cert }

// ChainDER returns the CA chain in DER, issuing CA first.
func (r *Response) ChainDER() [][]byte { return r.chain }

// Endpoints are where the device talks to Muster from now on.
type Endpoints struct {
	Provisioning string `json:"provisioning,omitempty"`
	MQTT         string `json:"mqtt,omitempty"`
}

// Redirect tells a device that provisioned through a node of another
// region where its home is. The certificate in the same answer is valid
// there: every region shares the operational CA.
type Redirect struct {
	Region    string    `json:"region"`
	Endpoints Endpoints `json:"endpoints"`
	// Reason is "allocated-elsewhere": the template's policy chose another
	// region than the node's.
	Reason string `json:"reason"`
}

// RedirectAllocatedElsewhere is the reason of a Redirect.
const RedirectAllocatedElsewhere = "allocated-elsewhere"
