package provision_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

// birthIdentity is what the gateway hands the pipeline after verifying a
// birth certificate at the TLS handshake.
func birthIdentity(t *testing.T, dev pt.Device) pki.Identity {
	t.Helper()
	id, err := pki.IdentityOf(dev.Birth.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	id.Chain = dev.Birth.Chain
	return id
}

func mqttAnswer(t *testing.T, raw []byte) provision.MQTTAnswer {
	t.Helper()
	var a provision.MQTTAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, raw)
	}
	return a
}

// The MQTT front door runs the same pipeline as the JSON API: a birth
// identity gets its operational certificate, the same request again gets
// the same certificate, and refusals and bad requests are answered in the
// JSON API's error shape with its status.
func TestProvisionMQTT(t *testing.T) {
	n := pt.Start(t)
	n.PutTemplate(t, pt.BasicTemplate(provision.DefaultTemplate))
	dev := n.Manufacture(t)
	id := birthIdentity(t, dev)
	csr := pt.MakeCSR(t, pt.NewKey(t), nil)
	req, _ := json.Marshal(map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})

	raw, ok := n.Pipeline.ProvisionMQTT(context.Background(), id, provision.DefaultTemplate, req)
	a := mqttAnswer(t, raw)
	if !ok || a.Response == nil || a.DeviceID != dev.ID || a.Certificate == "" || a.Error != nil {
		t.Fatalf("accepted=%v answer=%s", ok, raw)
	}
	again, ok := n.Pipeline.ProvisionMQTT(context.Background(), id, provision.DefaultTemplate, req)
	if b := mqttAnswer(t, again); !ok || b.Certificate != a.Certificate {
		t.Errorf("the same request again got a different answer: %s", again)
	}

	for name, tc := range map[string]struct {
		template string
		body     string
		status   int
		code     string
	}{
		"not json":         {provision.DefaultTemplate, `{"csr":`, http.StatusBadRequest, "bad_request"},
		"unknown field":    {provision.DefaultTemplate, `{"csr":"x","colour":"red"}`, http.StatusBadRequest, "bad_request"},
		"template clash":   {provision.DefaultTemplate, `{"csr":"x","template":"other"}`, http.StatusBadRequest, "bad_request"},
		"claim over mqtt":  {provision.DefaultTemplate, `{"csr":"x","claim":"c"}`, http.StatusBadRequest, "bad_request"},
		"unknown template": {"no-such-template", string(req), http.StatusForbidden, "refused"},
	} {
		t.Run(name, func(t *testing.T) {
			raw, ok := n.Pipeline.ProvisionMQTT(context.Background(), id, tc.template, []byte(tc.body))
			a := mqttAnswer(t, raw)
			if ok || a.Response != nil || a.Error == nil || a.Status != tc.status || a.Error.Code != tc.code {
				t.Fatalf("accepted=%v answer=%s; want status %d code %s", ok, raw, tc.status, tc.code)
			}
		})
	}
	big := make([]byte, 70<<10)
	if raw, ok := n.Pipeline.ProvisionMQTT(context.Background(), id, provision.DefaultTemplate, big); ok || mqttAnswer(t, raw).Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize request: %s", raw)
	}
}
