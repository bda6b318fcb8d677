package provision

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/pki"
)

// SigningCA is the CA operational certificates are issued by now.
type SigningCA struct {
	// ID is the CA's registry id, recorded with every certificate.
	ID string
	CA *pki.CA
	// Chain is the issuing CA, then the CAs above it up to the root: what
	// a device needs to present its certificate and to trust Muster's.
	Chain []*x509.Certificate
}

// Issuer finds the operational CA and the chain of any CA that issued a
// stored certificate.
type Issuer interface {
	// Operational is the CA that issues the certificates of devices homed
	// in region: the region's own CA when it has one, else the shared
	// operational CA (always for region "").
	Operational(ctx context.Context, region string) (*SigningCA, error)
	Chain(ctx context.Context, caID string) ([]*x509.Certificate, error)
}

// RegistryIssuer adapts the CA registry.
type RegistryIssuer struct{ Registry *ca.Registry }

// Operational implements Issuer with the region's active CA, or the
// registry's active operational CA.
func (r RegistryIssuer) Operational(ctx context.Context, region string) (*SigningCA, error) {
	a, err := r.Registry.OperationalFor(ctx, region)
	if err != nil {
		return nil, err
	}
	chain, err := r.Chain(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return &SigningCA{ID: a.ID, CA: a.Signer, Chain: chain}, nil
}

// Chain implements Issuer: the CA, then the active root.
func (r RegistryIssuer) Chain(ctx context.Context, caID string) ([]*x509.Certificate, error) {
	cert, err := r.Registry.Certificate(ctx, caID)
	if err != nil {
		return nil, err
	}
	root, err := r.Registry.IssuerFor(ctx, pki.PurposeRoot, "")
	if err != nil {
		return nil, fmt.Errorf("provision: root CA: %w", err)
	}
	return []*x509.Certificate{cert, root.Cert}, nil
}

// CAChain returns the shared operational CA chain, issuing CA first: what
// EST's cacerts serves and devices trust for their own certificates.
// Devices of a region with its own CA get that CA's chain in their
// provisioning and renewal answers.
func (p *Pipeline) CAChain(ctx context.Context) ([]*x509.Certificate, error) {
	s, err := p.issuer.Operational(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("provision: operational CA: %w", err)
	}
	return s.Chain, nil
}
