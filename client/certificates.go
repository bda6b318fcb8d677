package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Revocation reasons the server accepts (RFC 5280 names, any case).
const (
	ReasonUnspecified          = "unspecified"
	ReasonKeyCompromise        = "keyCompromise"
	ReasonCACompromise         = "caCompromise"
	ReasonAffiliationChanged   = "affiliationChanged"
	ReasonSuperseded           = "superseded"
	ReasonCessationOfOperation = "cessationOfOperation"
	ReasonPrivilegeWithdrawn   = "privilegeWithdrawn"
)

// Reasons returns every revocation reason, for menus and shell completion.
func Reasons() []string {
	return []string{ReasonUnspecified, ReasonKeyCompromise, ReasonCACompromise, ReasonAffiliationChanged,
		ReasonSuperseded, ReasonCessationOfOperation, ReasonPrivilegeWithdrawn}
}

// Certificate is a certificate Muster issued (or an external birth
// certificate it registered) with its revocation. CAID and Serial (lowercase
// hex) name it, as CRLs and OCSP do.
type Certificate struct {
	CAID        string    `json:"caId"`
	Serial      string    `json:"serial"`
	DeviceID    string    `json:"deviceId"`
	Kind        string    `json:"kind"` // birth, operational or server
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	CertPEM     string    `json:"certPem"`
	CreatedAt   time.Time `json:"createdAt"`
	// RevokedAt, RevokeReason (the RFC 5280 code) and RevokeReasonName
	// are set once the certificate is revoked.
	RevokedAt        *time.Time `json:"revokedAt,omitempty"`
	RevokeReason     *int       `json:"revokeReason,omitempty"`
	RevokeReasonName string     `json:"revokeReasonName,omitempty"`
}

// DeviceRevocation is the answer to RevokeDeviceCertificates.
type DeviceRevocation struct {
	// Revoked is how many certificates the call revoked; ones revoked
	// earlier are not counted.
	Revoked int           `json:"revoked"`
	Items   []Certificate `json:"items"`
}

type revokeBody struct {
	Reason string `json:"reason"`
}

func certificatePath(caID, serial string, sub ...string) string {
	p := "/v1/certificates/" + url.PathEscape(caID) + "/" + url.PathEscape(serial)
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// DeviceCertificates returns a device's certificates, revoked ones
// included, oldest first.
func (c *Client) DeviceCertificates(ctx context.Context, deviceID string) ([]Certificate, error) {
	return list[Certificate](ctx, c, devicePath(deviceID, "certificates"))
}

// Certificate returns the certificate caID issued with serial (hex).
func (c *Client) Certificate(ctx context.Context, caID, serial string) (*Certificate, error) {
	return fetch[Certificate](ctx, c, call{method: http.MethodGet, path: certificatePath(caID, serial)})
}

// RevokeCertificate revokes one certificate for reason (see Reasons). It
// takes effect on new device connections within a second, on every node;
// revoking a revoked certificate changes nothing.
func (c *Client) RevokeCertificate(ctx context.Context, caID, serial, reason string) (*Certificate, error) {
	var out Certificate
	err := c.do(ctx, call{method: http.MethodPost, path: certificatePath(caID, serial, "revoke"), body: revokeBody{Reason: reason}}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeDeviceCertificates revokes every certificate of a device that is
// not revoked yet.
func (c *Client) RevokeDeviceCertificates(ctx context.Context, deviceID, reason string) (*DeviceRevocation, error) {
	var out DeviceRevocation
	err := c.do(ctx, call{method: http.MethodPost, path: devicePath(deviceID, "certificates", "revoke"), body: revokeBody{Reason: reason}}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CRL downloads the current DER CRL of a CA. CRLs are served on the PKI
// address (the server's --pki-addr, plain http, or its device listener),
// not the admin API, so call it on a client made for that address, for
// example New("http://127.0.0.1:8080"). It needs no token.
func (c *Client) CRL(ctx context.Context, caID string) ([]byte, error) {
	var der []byte
	err := c.do(ctx, call{method: http.MethodGet, path: "/pki/crl/" + url.PathEscape(caID) + ".crl", accept: "application/pkix-crl"}, &der)
	if err != nil {
		return nil, err
	}
	return der, nil
}
