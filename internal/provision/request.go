package provision

import (
	"time"

	"github.com/muster-iot/muster/internal/pki"
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
	// Latencies are round-trip times to regional probes, by region name,
	// recorded for region allocation (the regions issue).
	Latencies map[string]time.Duration
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
	Region      string    `json:"region,omitempty"`
	Endpoints   Endpoints `json:"endpoints,omitzero"`
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
