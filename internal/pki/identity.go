package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// IdentityKind tells birth identities from operational ones.
type IdentityKind string

// Identity kinds.
const (
	// IdentityBirth is a factory identity: it may only provision.
	IdentityBirth IdentityKind = "birth"
	// IdentityOperational is a provisioned device's identity.
	IdentityOperational IdentityKind = "operational"
)

// ErrNotDeviceCertificate means a certificate carries no Muster device
// identity (neither policy) or a contradictory one.
var ErrNotDeviceCertificate = errors.New("not a Muster device certificate")

// Identity is who a device certificate names.
type Identity struct {
	Kind IdentityKind

	// Birth identity fields. Model and HardwareRevision may be empty.
	Factory          string
	Serial           string
	Model            string
	HardwareRevision string
	// External marks a birth certificate issued by a registered external
	// manufacturer CA rather than by Muster. It carries no Muster fields:
	// Serial is taken from the subject serialNumber (or CN), Factory is
	// empty and must be looked up from the anchor that verified it.
	External bool

	// DeviceID is set for operational identities.
	DeviceID string

	// Certificate is the device certificate.
	Certificate *x509.Certificate
	// Chain is the verified chain from the device certificate to its trust
	// anchor. Only Verifier sets it.
	Chain []*x509.Certificate
}

// IdentityOf reads the identity of a Muster-issued device certificate from
// its policy OID and identity URN, cross-checked against the subject. It
// does not verify the certificate; Verifier does.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	birth, operational := hasPolicy(cert, BirthPolicyOID), hasPolicy(cert, OperationalPolicyOID)
	switch {
	case birth && operational:
		return Identity{}, fmt.Errorf("pki: certificate %q has both the birth and the operational policy: %w", cert.Subject.CommonName, ErrNotDeviceCertificate)
	case !birth && !operational:
		return Identity{}, fmt.Errorf("pki: certificate %q has no Muster device policy: %w", cert.Subject.CommonName, ErrNotDeviceCertificate)
	}
	uri, err := identityURI(cert)
	if err != nil {
		return Identity{}, err
	}
	if operational {
		id, err := ParseOperationalURI(uri)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", err, ErrNotDeviceCertificate)
		}
		if cert.Subject.CommonName != id {
			return Identity{}, fmt.Errorf("pki: operational certificate CN %q does not match its URN %q: %w", cert.Subject.CommonName, uri, ErrNotDeviceCertificate)
		}
		return Identity{Kind: IdentityOperational, DeviceID: id, Certificate: cert}, nil
	}
	factory, serial, err := ParseBirthURI(uri)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", err, ErrNotDeviceCertificate)
	}
	s := cert.Subject
	if s.SerialNumber != serial || len(s.Organization) != 1 || s.Organization[0] != factory {
		return Identity{}, fmt.Errorf("pki: birth certificate subject %q does not match its URN %q: %w", s.String(), uri, ErrNotDeviceCertificate)
	}
	id := Identity{Kind: IdentityBirth, Factory: factory, Serial: serial, Certificate: cert}
	if len(s.OrganizationalUnit) > 0 {
		id.Model = s.OrganizationalUnit[0]
	}
	for _, n := range s.Names {
		if v, ok := n.Value.(string); ok && n.Type.Equal(oidDescription) {
			if rev, ok := strings.CutPrefix(v, hardwareRevisionPrefix); ok {
				id.HardwareRevision = rev
			}
		}
	}
	return id, nil
}

// externalBirthIdentity describes a birth certificate from an external
// manufacturer CA, which follows the maker's conventions, not ours.
func externalBirthIdentity(cert *x509.Certificate) Identity {
	serial := cert.Subject.SerialNumber
	if serial == "" {
		serial = cert.Subject.CommonName
	}
	return Identity{Kind: IdentityBirth, Serial: serial, External: true, Certificate: cert}
}

// hasPolicy reports whether cert asserts the policy with the given OID.
func hasPolicy(cert *x509.Certificate, oid string) bool {
	for _, p := range cert.Policies {
		if p.String() == oid {
			return true
		}
	}
	return false
}

// identityURI returns the one urn:muster: URI of a certificate. More than
// one would make the identity ambiguous.
func identityURI(cert *x509.Certificate) (string, error) {
	var found []string
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, "urn:muster:") {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("pki: certificate %q has %d Muster identity URNs, want exactly 1: %w", cert.Subject.CommonName, len(found), ErrNotDeviceCertificate)
	}
	return found[0], nil
}
