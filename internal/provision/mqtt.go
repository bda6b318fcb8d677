package provision

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/muster-iot/muster/internal/pki"
)

// MQTTAnswer is what a device gets on $muster/provision/{template}/accepted
// (Response set) or /rejected (Error set, with the HTTP status the JSON
// API would have answered, so MQTT and HTTP devices share one meaning).
type MQTTAnswer struct {
	*Response
	Status int        `json:"status,omitempty"`
	Error  *JSONError `json:"error,omitempty"`
}

// ProvisionMQTT is the MQTT front door (it implements gateway.Provisioner):
// request is the same JSON as POST /v1/provision, the template comes from
// the topic, and id is the birth identity the gateway verified at the TLS
// handshake. A pending approval is a rejection with status 202 and a
// retryAfter: the device publishes the same request again later.
func (p *Pipeline) ProvisionMQTT(ctx context.Context, id pki.Identity, template string, request []byte) ([]byte, bool) {
	resp, err := p.provisionMQTT(ctx, id, template, request)
	ans := MQTTAnswer{Response: resp}
	if err != nil {
		status, _, body := errorAnswer(p.log, err)
		ans = MQTTAnswer{Status: status, Error: &body}
	}
	out, merr := json.Marshal(ans)
	if merr != nil {
		p.log.Error("provisioning over MQTT: encode the answer", "err", merr)
		return []byte(`{"status":500,"error":{"code":"internal","message":"internal error; retry later"}}`), false
	}
	return out, err == nil
}

func (p *Pipeline) provisionMQTT(ctx context.Context, id pki.Identity, template string, request []byte) (*Response, error) {
	if len(request) > maxJSONBody {
		return nil, &BadRequestError{Message: "request is too large", TooLarge: true}
	}
	in, err := decodeJSONRequest(bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	if in.Template != "" && in.Template != template {
		return nil, &BadRequestError{Message: "the request names template " + in.Template + " but was published on the topic of " + template}
	}
	in.Template = template
	if in.Claim != "" {
		return nil, &BadRequestError{Message: "claims are not accepted over MQTT: a device connected with a birth certificate"}
	}
	req, err := in.request(id, false)
	if err != nil {
		return nil, err
	}
	return p.Provision(ctx, req)
}
