package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/revocation/revocationtest"
)

// issued gives d a birth certificate, recorded as issuance records it, and
// returns its CA id and serial.
func (h *harness) issued(d *fleet.Device) (caID, serial string) {
	h.t.Helper()
	cred := revocationtest.NewPKI(h.t, d.Identity.Factory).BirthCredential(h.t, h.st, d)
	return revocationtest.ManufacturingID, cred.Certificate.SerialNumber.Text(16)
}

// certAnswer is the part of a certificate answer the tests look at.
type certAnswer struct {
	CAID             string  `json:"caId"`
	Serial           string  `json:"serial"`
	DeviceID         string  `json:"deviceId"`
	Kind             string  `json:"kind"`
	RevokedAt        *string `json:"revokedAt"`
	RevokeReason     *int    `json:"revokeReason"`
	RevokeReasonName string  `json:"revokeReasonName"`
}

func TestCertificateRoutes(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	empty := call[list[certAnswer]](h, request{caller: "auditor", method: "GET", path: "/v1/devices/" + d.ID + "/certificates"}, http.StatusOK)
	if len(empty.Items) != 0 {
		t.Fatalf("certificates of a new device = %+v", empty.Items)
	}
	caID, serial := h.issued(d)
	_, serial2 := h.issued(d)

	got := call[list[certAnswer]](h, request{caller: "manufacturer", method: "GET", path: "/v1/devices/" + d.ID + "/certificates"}, http.StatusOK)
	if len(got.Items) != 2 || got.Items[0].Kind != "birth" || got.Items[0].DeviceID != d.ID || got.Items[0].RevokedAt != nil {
		t.Fatalf("certificates = %+v", got.Items)
	}
	one := call[certAnswer](h, request{caller: "installer", method: "GET", path: "/v1/certificates/" + caID + "/" + serial}, http.StatusOK)
	if one.Serial != serial || one.CAID != caID || one.RevokedAt != nil {
		t.Fatalf("certificate = %+v", one)
	}

	revokePath := "/v1/certificates/" + caID + "/" + serial + "/revoke"
	revoked := call[certAnswer](h, request{caller: "operator", method: "POST", path: revokePath, body: map[string]any{"reason": "keyCompromise"}}, http.StatusOK)
	if revoked.RevokedAt == nil || revoked.RevokeReason == nil || *revoked.RevokeReason != 1 || revoked.RevokeReasonName != "keyCompromise" {
		t.Fatalf("revoked certificate = %+v", revoked)
	}
	history := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: "/v1/devices/" + d.ID + "/history"}, http.StatusOK)
	if n := len(history.Items); n != 2 || history.Items[1].Type != fleet.EventCertificateRevoked || history.Items[1].Actor != "operator/operator-token" {
		t.Fatalf("history = %+v", history.Items)
	}
	// Revoking again changes nothing and says so with the same answer.
	before := h.snapshot(d.ID)
	again := call[certAnswer](h, request{caller: "admin", method: "POST", path: revokePath, body: map[string]any{"reason": "superseded"}}, http.StatusOK)
	if *again.RevokeReason != 1 {
		t.Errorf("second revocation changed the reason to %d", *again.RevokeReason)
	}
	h.assertUnchanged(t, before, d.ID)

	all := call[deviceRevocation](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/certificates/revoke",
		body: map[string]any{"reason": "cessationOfOperation"}}, http.StatusOK)
	if all.Revoked != 1 || len(all.Items) != 2 {
		t.Fatalf("device revocation = %+v", all)
	}
	for _, c := range all.Items {
		if c.RevokedAt == nil {
			t.Errorf("certificate %s not revoked", c.Serial)
		}
		if c.Serial == serial2 && c.RevokeReasonName != "cessationOfOperation" {
			t.Errorf("certificate %s revoked for %q", c.Serial, c.RevokeReasonName)
		}
	}
	verified := call[verifyResult](h, request{caller: "auditor", method: "GET", path: "/v1/devices/" + d.ID + "/history/verify"}, http.StatusOK)
	if !verified.OK || verified.Events != 3 {
		t.Fatalf("history verification = %+v", verified)
	}
}

func TestCertificateBadInput(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	caID, serial := h.issued(d)
	certPath := "/v1/certificates/" + caID + "/" + serial
	devicePath := "/v1/devices/" + d.ID + "/certificates"

	for _, tc := range []struct {
		name, caller, method, path string
		body                       any
		status                     int
		code, field                string
	}{
		{"unknown reason", "admin", "POST", certPath + "/revoke", map[string]any{"reason": "stolen"}, 400, codeValidationFailed, "reason"},
		{"certificateHold", "admin", "POST", certPath + "/revoke", map[string]any{"reason": "certificateHold"}, 400, codeValidationFailed, "reason"},
		{"no reason", "admin", "POST", certPath + "/revoke", map[string]any{}, 400, codeValidationFailed, "reason"},
		{"reason as code", "admin", "POST", certPath + "/revoke", map[string]any{"reason": 1}, 400, codeInvalidType, "reason"},
		{"unknown field", "admin", "POST", certPath + "/revoke", map[string]any{"reason": "superseded", "when": "now"}, 400, codeUnknownField, "when"},
		{"unknown serial", "admin", "POST", "/v1/certificates/" + caID + "/abc123/revoke", map[string]any{"reason": "superseded"}, 404, codeNotFound, ""},
		{"unknown CA", "admin", "POST", "/v1/certificates/ca-nope/" + serial + "/revoke", map[string]any{"reason": "superseded"}, 404, codeNotFound, ""},
		{"serial not hex", "admin", "POST", "/v1/certificates/" + caID + "/xyz/revoke", map[string]any{"reason": "superseded"}, 400, codeValidationFailed, "serial"},
		{"get unknown serial", "admin", "GET", "/v1/certificates/" + caID + "/abc123", nil, 404, codeNotFound, ""},
		{"unknown device", "admin", "POST", "/v1/devices/dev_nope/certificates/revoke", map[string]any{"reason": "superseded"}, 404, codeNotFound, ""},
		{"device reason checked first", "admin", "POST", "/v1/devices/dev_nope/certificates/revoke", map[string]any{"reason": "x"}, 400, codeValidationFailed, "reason"},
		{"other factory's certificate", manufacturer2, "GET", certPath, nil, 404, codeNotFound, ""},
		{"other factory's device", manufacturer2, "GET", devicePath, nil, 404, codeNotFound, ""},
		{"manufacturer revokes", "manufacturer", "POST", devicePath + "/revoke", map[string]any{"reason": "superseded"}, 403, codeForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			before := h.snapshot(d.ID)
			w := h.do(request{caller: tc.caller, method: tc.method, path: tc.path, body: tc.body})
			e := errorOf(t, w)
			if w.Code != tc.status || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("%d %+v, want %d %s field %q", w.Code, e, tc.status, tc.code, tc.field)
			}
			h.assertUnchanged(t, before, d.ID)
		})
	}
}

// recordingRevoker stands in for the revocation service.
type recordingRevoker struct {
	Revoker
	calls []string
}

func (r *recordingRevoker) RevokeCertificate(ctx context.Context, caID, serial string, reason int, actor string) error {
	r.calls = append(r.calls, "cert "+caID+"/"+serial)
	return r.Revoker.RevokeCertificate(ctx, caID, serial, reason, actor)
}

func (r *recordingRevoker) RevokeDeviceCertificates(ctx context.Context, deviceID string, reason int, actor string) (int, error) {
	r.calls = append(r.calls, "device "+deviceID)
	return r.Revoker.RevokeDeviceCertificates(ctx, deviceID, reason, actor)
}

// A configured Revoker (the node's revocation service) revokes, not the
// store directly, so the node applies the revocation before answering.
func TestCertificateRevokerIsUsed(t *testing.T) {
	h := newHarness(t)
	rec := &recordingRevoker{Revoker: h.st}
	h.srv = New(Config{Store: h.st, Revoker: rec})
	d := h.newDevice(factory1)
	caID, serial := h.issued(d)
	call[certAnswer](h, request{caller: "admin", method: "POST", path: "/v1/certificates/" + caID + "/" + serial + "/revoke",
		body: map[string]any{"reason": "superseded"}}, http.StatusOK)
	call[deviceRevocation](h, request{caller: "admin", method: "POST", path: "/v1/devices/" + d.ID + "/certificates/revoke",
		body: map[string]any{"reason": "superseded"}}, http.StatusOK)
	if len(rec.calls) != 2 {
		t.Fatalf("revoker calls = %v", rec.calls)
	}
}
