package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Muster's object identifiers live under the UUID arc of ITU-T X.667
// (2.25.<UUID as a decimal integer>), which needs no registration. The UUID
// is e3cc46fb-7c0f-403f-b9d2-3fad3cbaeef9, generated once for this project;
// never change it, or existing certificates lose their meaning.
//
// Sub-arcs: .1 certificate policies. Only policies use the arc: crypto/x509
// parses policy OIDs of any size (x509.OID), but it rejects certificates
// whose extension identifiers have components wider than 64 bits, so no
// private extension can live here.
const (
	// MusterOIDArc is the root of Muster's OIDs.
	MusterOIDArc = "2.25.302795423295652633194793459137816227577"
	// BirthPolicyOID marks a birth (IDevID) certificate issued by a Muster
	// manufacturing CA.
	BirthPolicyOID = MusterOIDArc + ".1.1"
	// OperationalPolicyOID marks an operational (LDevID) certificate.
	OperationalPolicyOID = MusterOIDArc + ".1.2"
)

// Default certificate lifetimes, used when a profile's Validity is zero.
const (
	// DefaultBirthValidity covers a device's whole service life: the birth
	// certificate is how it re-provisions after a factory reset.
	DefaultBirthValidity = 20 * 8766 * time.Hour // 20 years of 365.25 days
	// DefaultOperationalValidity is one year; devices renew before expiry.
	DefaultOperationalValidity = 8766 * time.Hour
	// DefaultServerValidity matches common practice for TLS servers.
	DefaultServerValidity = 90 * 24 * time.Hour
)

// hardwareRevisionPrefix introduces the hardware revision in the subject's
// description attribute (2.5.4.13). A private extension would be the
// textbook place, but see MusterOIDArc for why ours cannot have one.
const hardwareRevisionPrefix = "hardware revision "

// oidDescription is the X.520 description attribute type. It is never
// modified.
var oidDescription = asn1.ObjectIdentifier{2, 5, 4, 13}

// maxNameLen is the X.520 upper bound for common names and most other
// naming attributes (ub-common-name and friends).
const maxNameLen = 64

// Profile describes one kind of end-entity certificate. Issue fills in the
// serial number and key identifiers and clamps the validity to the CA's.
type Profile interface {
	// IssuerPurpose is the purpose of the only CA that may issue under the
	// profile, so that, say, an operational CA cannot mint birth
	// certificates.
	IssuerPurpose() Purpose
	// Template returns the certificate to issue at time now.
	Template(now time.Time) (*x509.Certificate, error)
}

// BirthProfile is a device's birth certificate (IEEE 802.1AR IDevID): the
// low-privilege factory identity used only to reach provisioning.
type BirthProfile struct {
	Factory          string
	Model            string // optional
	Serial           string
	HardwareRevision string // optional
	// Validity defaults to DefaultBirthValidity.
	Validity time.Duration
}

// IssuerPurpose implements Profile.
func (BirthProfile) IssuerPurpose() Purpose { return PurposeManufacturing }

// Template implements Profile: CN and serialNumber are the device serial,
// O the factory, OU the model, the SAN URI is BirthURI(factory, serial),
// and the certificate policy is BirthPolicyOID.
func (p BirthProfile) Template(now time.Time) (*x509.Certificate, error) {
	err := errors.Join(
		checkNameField("factory", p.Factory, true),
		checkNameField("serial", p.Serial, true),
		checkNameField("model", p.Model, false),
		checkNameField("hardware revision", p.HardwareRevision, false),
	)
	if err != nil {
		return nil, fmt.Errorf("pki: birth profile: %w", err)
	}
	subject := pkix.Name{
		CommonName:   p.Serial,
		SerialNumber: p.Serial,
		Organization: []string{p.Factory},
	}
	if p.Model != "" {
		subject.OrganizationalUnit = []string{p.Model}
	}
	if p.HardwareRevision != "" {
		subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidDescription, Value: hardwareRevisionPrefix + p.HardwareRevision}}
	}
	return deviceTemplate(now, subject, BirthURI(p.Factory, p.Serial), BirthPolicyOID, p.Validity, DefaultBirthValidity)
}

// OperationalProfile is a device's operational certificate (IEEE 802.1AR
// LDevID), issued after provisioning.
type OperationalProfile struct {
	DeviceID string
	// Validity defaults to DefaultOperationalValidity.
	Validity time.Duration
}

// IssuerPurpose implements Profile.
func (OperationalProfile) IssuerPurpose() Purpose { return PurposeOperational }

// Template implements Profile: CN is the device ID, the SAN URI is
// OperationalURI(id), and the certificate policy is OperationalPolicyOID.
func (p OperationalProfile) Template(now time.Time) (*x509.Certificate, error) {
	if err := checkNameField("device ID", p.DeviceID, true); err != nil {
		return nil, fmt.Errorf("pki: operational profile: %w", err)
	}
	subject := pkix.Name{CommonName: p.DeviceID}
	return deviceTemplate(now, subject, OperationalURI(p.DeviceID), OperationalPolicyOID, p.Validity, DefaultOperationalValidity)
}

// deviceTemplate builds the parts birth and operational certificates share:
// client authentication only, one identity URN, one policy.
func deviceTemplate(now time.Time, subject pkix.Name, uri, policy string, validity, def time.Duration) (*x509.Certificate, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("pki: identity URN %q: %w", uri, err)
	}
	oid, err := x509.ParseOID(policy)
	if err != nil {
		return nil, fmt.Errorf("pki: policy OID: %w", err)
	}
	notBefore, notAfter, err := validityWindow(now, validity, def)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject:     subject,
		URIs:        []*url.URL{u},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Policies:    []x509.OID{oid},
	}, nil
}

// ServerProfile is a TLS server certificate for Muster's own endpoints.
type ServerProfile struct {
	DNSNames []string
	IPs      []net.IP
	// Validity defaults to DefaultServerValidity.
	Validity time.Duration
}

// IssuerPurpose implements Profile.
func (ServerProfile) IssuerPurpose() Purpose { return PurposeServer }

// Template implements Profile: the names go into the SAN, the first of
// them also into the CN for the benefit of humans reading it.
func (p ServerProfile) Template(now time.Time) (*x509.Certificate, error) {
	if len(p.DNSNames) == 0 && len(p.IPs) == 0 {
		return nil, errors.New("pki: server profile needs at least one DNS name or IP address")
	}
	for _, name := range p.DNSNames {
		if name == "" || len(name) > 253 || strings.ContainsFunc(name, func(r rune) bool { return r > unicode.MaxASCII || r <= ' ' }) {
			return nil, fmt.Errorf("pki: server profile: invalid DNS name %q", name)
		}
	}
	cn := ""
	if len(p.DNSNames) > 0 {
		cn = p.DNSNames[0]
	} else {
		cn = p.IPs[0].String()
	}
	if len(cn) > maxNameLen {
		cn = "" // the SAN is authoritative; an over-long CN would be invalid.
	}
	notBefore, notAfter, err := validityWindow(now, p.Validity, DefaultServerValidity)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    p.DNSNames,
		IPAddresses: p.IPs,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, nil
}

// validityWindow returns the backdated start and the end of a certificate
// valid for d (or def when d is zero).
func validityWindow(now time.Time, d, def time.Duration) (time.Time, time.Time, error) {
	if d == 0 {
		d = def
	}
	if d < 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("pki: negative certificate validity %v", d)
	}
	return now.Add(-backdate), now.Add(d), nil
}

// checkNameField keeps subject values printable and within X.520 bounds,
// since they end up in logs, dashboards and other parsers.
func checkNameField(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s is required", field)
	case len(v) > maxNameLen:
		return fmt.Errorf("%s is %d bytes long, at most %d allowed", field, len(v), maxNameLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", field)
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Errorf("%s contains control characters", field)
	}
	return nil
}
