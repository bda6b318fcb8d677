package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Purpose says what a CA in the Muster hierarchy is for. It is written into
// the CA certificate's subject as an organizational unit such as "Muster
// operational CA", so a CA loaded from disk knows its purpose without extra
// configuration.
type Purpose string

// The CA purposes of the trust hierarchy.
const (
	// PurposeRoot is the self-signed root that signs the other CAs.
	PurposeRoot Purpose = "root"
	// PurposeOperational CAs issue operational (LDevID) device certificates.
	PurposeOperational Purpose = "operational"
	// PurposeServer CAs issue TLS certificates for Muster's own endpoints.
	PurposeServer Purpose = "server"
	// PurposeManufacturing CAs issue birth (IDevID) certificates, one per
	// factory.
	PurposeManufacturing Purpose = "manufacturing"
)

// purposes lists every Purpose, for parsing.
func purposes() []Purpose {
	return []Purpose{PurposeRoot, PurposeOperational, PurposeServer, PurposeManufacturing}
}

// ParsePurpose parses a purpose name.
func ParsePurpose(s string) (Purpose, error) {
	for _, p := range purposes() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("pki: unknown CA purpose %q: use root, operational, server or manufacturing", s)
}

// subjectMarker is the organizational unit that records the purpose in a CA
// certificate, e.g. "Muster manufacturing CA". The caller may extend it,
// as in "Muster manufacturing CA for factory Shenzhen-2".
func (p Purpose) subjectMarker() string { return "Muster " + string(p) + " CA" }

// extKeyUsage is what the purpose's CA certificate restricts issuance to.
// Clients check EKUs through the whole chain, so a manufacturing CA whose
// key leaks still cannot mint a TLS server certificate.
func (p Purpose) extKeyUsage() []x509.ExtKeyUsage {
	switch p {
	case PurposeOperational, PurposeManufacturing:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case PurposeServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	default:
		return nil
	}
}

// backdate is subtracted from every NotBefore so that devices and servers
// with slightly slow clocks accept a certificate the moment it is issued.
const backdate = 5 * time.Minute

// ErrKeyMismatch means a CA certificate and the key loaded for it differ.
var ErrKeyMismatch = errors.New("CA key does not match certificate")

// CA is a certificate authority of the Muster hierarchy: its certificate,
// the signer for its key and its purpose. A CA is immutable and safe for
// concurrent use if its signer is.
type CA struct {
	cert    *x509.Certificate
	signer  crypto.Signer
	purpose Purpose
}

// Certificate returns the CA certificate. Callers must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertificatePEM returns the CA certificate PEM-encoded.
func (c *CA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// Purpose returns what the CA is for.
func (c *CA) Purpose() Purpose { return c.purpose }

// caRequest describes a CA certificate to create.
type caRequest struct {
	label    string
	alg      KeyAlgorithm
	purpose  Purpose
	subject  pkix.Name
	validity time.Duration
	// rawSubject, when set, is used verbatim instead of subject so that a
	// rotated CA carries byte-identical names.
	rawSubject []byte
}

// NewRootCA generates a key in ks under label and self-signs a root CA
// certificate valid for validity. The subject gets the "Muster root CA"
// organizational unit and, if it has no common name, that name too.
func NewRootCA(ctx context.Context, ks KeyStore, label string, alg KeyAlgorithm, subject pkix.Name, validity time.Duration) (*CA, error) {
	return newCA(ctx, ks, nil, caRequest{label: label, alg: alg, purpose: PurposeRoot, subject: subject, validity: validity})
}

// NewSubCA generates a key in ks under label and issues an intermediate CA
// of the given purpose from the root c. Its validity is clamped to c's.
func (c *CA) NewSubCA(ctx context.Context, ks KeyStore, label string, purpose Purpose, alg KeyAlgorithm, subject pkix.Name, validity time.Duration) (*CA, error) {
	if purpose == PurposeRoot {
		return nil, errors.New("pki: a root CA cannot be issued by another CA; use NewRootCA")
	}
	return newCA(ctx, ks, c, caRequest{label: label, alg: alg, purpose: purpose, subject: subject, validity: validity})
}

// Rotate creates the successor of c: same purpose, subject and key
// algorithm, the same validity length, and a new key stored under
// newLabel. An intermediate is signed by parent (the current root); a root
// is self-signed and parent must be nil. Both generations stay valid until
// the old one expires, which gives devices time to move to the new one.
func (c *CA) Rotate(ctx context.Context, parent *CA, ks KeyStore, newLabel string) (*CA, error) {
	alg, err := algorithmOf(c.cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("pki: rotate CA %q: %w", c.cert.Subject.CommonName, err)
	}
	if c.purpose == PurposeRoot && parent != nil {
		return nil, errors.New("pki: a root CA rotates by self-signing: pass a nil parent")
	}
	return newCA(ctx, ks, parent, caRequest{
		label:      newLabel,
		alg:        alg,
		purpose:    c.purpose,
		subject:    c.cert.Subject,
		rawSubject: c.cert.RawSubject,
		validity:   c.cert.NotAfter.Sub(c.cert.NotBefore) - backdate,
	})
}

// newCA validates the request before touching the key store, because a
// key generated for a request that then fails would block its label.
func newCA(ctx context.Context, ks KeyStore, parent *CA, req caRequest) (*CA, error) {
	if req.validity <= 0 {
		return nil, fmt.Errorf("pki: CA validity must be positive, got %v", req.validity)
	}
	if _, err := ParsePurpose(string(req.purpose)); err != nil {
		return nil, err
	}
	if req.purpose != PurposeRoot {
		if parent == nil {
			return nil, fmt.Errorf("pki: a %s CA needs the root CA as parent", req.purpose)
		}
		if parent.purpose != PurposeRoot {
			return nil, fmt.Errorf("pki: only the root CA may sign CAs, not a %s CA", parent.purpose)
		}
	}
	subject, err := caSubject(req.subject, req.purpose)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-backdate), now.Add(req.validity)
	if parent != nil {
		if !now.Before(parent.cert.NotAfter) {
			return nil, fmt.Errorf("pki: parent CA %q expired at %s", parent.cert.Subject.CommonName, parent.cert.NotAfter)
		}
		if notAfter.After(parent.cert.NotAfter) {
			notAfter = parent.cert.NotAfter
		}
	}

	key, err := ks.Generate(ctx, req.label, req.alg)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               subject,
		RawSubject:            req.rawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.purpose.extKeyUsage(),
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
	issuerCert, issuerKey := tmpl, key
	if parent != nil {
		// Intermediates sign only end-entity certificates.
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
		issuerCert, issuerKey = parent.cert, parent.signer
	} else {
		// The root signs intermediates, which sign leaves.
		tmpl.MaxPathLen = 1
		// RFC 5280 lets self-signed certificates omit the AKI, and
		// crypto/x509 does unless told; some path builders want it.
		tmpl.AuthorityKeyId = ski
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, key.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %s CA certificate: %w", req.purpose, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	return &CA{cert: cert, signer: key, purpose: req.purpose}, nil
}

// caSubject adds the purpose marker to subject. A caller-supplied marker
// (possibly extended, "Muster server CA for eu-west") is kept; a marker
// naming another purpose is refused, since the certificate would lie.
func caSubject(subject pkix.Name, p Purpose) (pkix.Name, error) {
	subject.OrganizationalUnit = slices.Clone(subject.OrganizationalUnit)
	found := false
	for _, ou := range subject.OrganizationalUnit {
		got, ok := purposeFromOU(ou)
		if !ok {
			continue
		}
		if got != p {
			return pkix.Name{}, fmt.Errorf("pki: subject unit %q names a %s CA, but this is a %s CA", ou, got, p)
		}
		found = true
	}
	if !found {
		subject.OrganizationalUnit = append([]string{p.subjectMarker()}, subject.OrganizationalUnit...)
	}
	if subject.CommonName == "" {
		subject.CommonName = p.subjectMarker()
	}
	return subject, nil
}

// purposeFromOU recognises a purpose marker, alone or followed by a space
// and a description.
func purposeFromOU(ou string) (Purpose, bool) {
	for _, p := range purposes() {
		m := p.subjectMarker()
		if ou == m || strings.HasPrefix(ou, m+" ") {
			return p, true
		}
	}
	return "", false
}

// purposeOf reads the purpose marker of a CA certificate.
func purposeOf(cert *x509.Certificate) (Purpose, error) {
	var found []Purpose
	for _, ou := range cert.Subject.OrganizationalUnit {
		if p, ok := purposeFromOU(ou); ok {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("pki: certificate %q is not a Muster CA: want exactly one subject unit like \"Muster operational CA\", found %d", cert.Subject.CommonName, len(found))
	}
	return found[0], nil
}

// LoadCA loads the key for label from ks and pairs it with the first
// certificate in certPEM. It refuses certificates that are not CA
// certificates and keys that do not match, because signing with the wrong
// key produces certificates nobody can verify.
func LoadCA(ctx context.Context, ks KeyStore, label string, certPEM []byte) (*CA, error) {
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: certificate %q is not a CA certificate (needs basic constraints CA:TRUE and key usage keyCertSign)", cert.Subject.CommonName)
	}
	purpose, err := purposeOf(cert)
	if err != nil {
		return nil, err
	}
	key, err := ks.Load(ctx, label)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: key %q and certificate %q (serial %x): %w; configure the key label that was used to create this CA",
			label, cert.Subject.CommonName, cert.SerialNumber, ErrKeyMismatch)
	}
	return &CA{cert: cert, signer: key, purpose: purpose}, nil
}

// parseCertificatePEM parses the first CERTIFICATE block of data.
func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("pki: no CERTIFICATE PEM block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse certificate: %w", err)
		}
		return cert, nil
	}
}
