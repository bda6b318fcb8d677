package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// maxNameLen is the X.520 bound on common names and organizational units;
// longer values are cut so strict parsers accept the certificate.
const maxNameLen = 64

// create makes a new CA of purpose p (for factory, when manufacturing),
// signed by parent (nil for a root), with a fresh key in the key store,
// and returns the record to store. The key label embeds the new CA's id, so
// labels never collide, not even between nodes racing to bootstrap.
func (r *Registry) create(ctx context.Context, p pki.Purpose, factory string, parent *pki.CA) (store.CA, *pki.CA, error) {
	id := fleet.NewID("ca_", r.now())
	label := string(p) + "-" + id
	subject := pkix.Name{Organization: []string{r.opts.Organization}}
	validity := r.opts.IssuingValidity
	switch p {
	case pki.PurposeRoot:
		subject.CommonName = "Muster Root CA"
		validity = r.opts.RootValidity
	case pki.PurposeOperational:
		subject.CommonName = "Muster Operational CA"
	case pki.PurposeServer:
		subject.CommonName = "Muster Server CA"
	case pki.PurposeManufacturing:
		// The unit names the factory as well as the purpose, so a birth
		// certificate's issuer says where the device was made.
		subject.CommonName = cut("Muster Manufacturing CA " + factory)
		subject.OrganizationalUnit = []string{cut("Muster manufacturing CA for factory " + factory)}
		validity = r.opts.ManufacturingValidity
	case PurposeRegional:
		// An operational CA by profile; the unit names the region.
		subject.CommonName = cut("Muster Operational CA " + factory)
		subject.OrganizationalUnit = []string{cut("Muster operational CA for region " + factory)}
	default:
		return store.CA{}, nil, fmt.Errorf("ca: cannot create a CA of purpose %q", p)
	}
	var signer *pki.CA
	var err error
	if p == pki.PurposeRoot {
		signer, err = pki.NewRootCA(ctx, r.ks, label, r.opts.KeyAlgorithm, subject, validity)
	} else {
		profile := p
		if p == PurposeRegional {
			profile = pki.PurposeOperational
		}
		signer, err = parent.NewSubCA(ctx, r.ks, label, profile, r.opts.KeyAlgorithm, subject, validity)
	}
	if err != nil {
		return store.CA{}, nil, fmt.Errorf("ca: create the %s CA: %w", p, err)
	}
	row := record(signer.Certificate(), p, factory)
	row.ID, row.KeyLabel = id, label
	return row, signer, nil
}

// record is the registry record of a CA certificate, without id or key.
func record(cert *x509.Certificate, p pki.Purpose, factory string) store.CA {
	return store.CA{
		Purpose:      string(p),
		Factory:      factory,
		CertPEM:      string(certPEM(cert)),
		SubjectKeyID: keyID(cert),
		Status:       store.CAActive,
		NotAfter:     cert.NotAfter,
	}
}

// keyID is the certificate's subject key identifier in hex or, for an
// external CA certificate without one, RFC 7093's first method over its key.
func keyID(cert *x509.Certificate) string {
	if len(cert.SubjectKeyId) > 0 {
		return hex.EncodeToString(cert.SubjectKeyId)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:20])
}

// cut shortens s to maxNameLen bytes; factory names are ASCII.
func cut(s string) string {
	if len(s) <= maxNameLen {
		return s
	}
	return strings.TrimSpace(s[:maxNameLen])
}

// Rotate replaces the active operational, server, manufacturing or
// regional CA (of factory for manufacturing, of the region named by
// factory for regional) with a new one: same subject and key
// algorithm, a new key, signed by the current root. The old CA stops
// signing at once and stays trusted for overlap, so certificates it issued
// keep working while devices move to the new CA; then it retires. The
// rotation is recorded in the fleet audit log.
func (r *Registry) Rotate(ctx context.Context, p pki.Purpose, factory string, overlap time.Duration, actor string) (*Authority, error) {
	switch {
	case p == pki.PurposeRoot || p == PurposeExternal:
		return nil, fmt.Errorf("ca: rotating the %s CA is not supported: rotate operational, server, manufacturing or regional CAs", p)
	case overlap < 0:
		return nil, fmt.Errorf("ca: negative overlap %v", overlap)
	case (p == pki.PurposeManufacturing || p == PurposeRegional) != (factory != ""):
		return nil, fmt.Errorf("ca: a manufacturing CA rotates for one factory and a regional CA for one region; other CAs for none")
	}
	old, err := r.IssuerFor(ctx, p, factory)
	if err != nil {
		return nil, err
	}
	root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
	if err != nil {
		return nil, err
	}
	id := fleet.NewID("ca_", r.now())
	label := string(p) + "-" + id
	signer, err := old.Signer.Rotate(ctx, root.Signer, r.ks, label)
	if err != nil {
		return nil, fmt.Errorf("ca: rotate the %s CA %s: %w", p, old.ID, err)
	}
	row := record(signer.Certificate(), p, factory)
	row.ID, row.KeyLabel = id, label
	retireAt := r.now().Add(overlap)
	if err := r.st.ReplaceCA(ctx, old.ID, retireAt, &row, actor); err != nil {
		return nil, err
	}
	r.keep(row.ID, signer)
	r.invalidate()
	r.opts.Logger.InfoContext(ctx, "rotated CA", "purpose", p, "factory", factory, "old", old.ID, "new", row.ID, "old_trusted_until", retireAt)
	return &Authority{CA: row, Cert: signer.Certificate(), Signer: signer}, nil
}
