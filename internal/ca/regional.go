package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// PurposeRegional is the purpose of a region's own operational CA. Its
// certificate is an operational CA certificate signed by the root (so it
// issues operational certificates and is trusted for them everywhere, like
// the shared operational CA); the record's Factory column holds the
// region's name. A region has at most one active regional CA. Deleting
// the region retires it (store.DeleteRegion): it stops signing and stays
// trusted until it expires, and a region created again under the same
// name gets a new CA.
const PurposeRegional = pki.Purpose(store.RegionalCAPurpose)

// RegionStore is what AddRegionalCA and CreateRegion write through;
// *store.Store has it.
type RegionStore interface {
	InsertRegionCA(ctx context.Context, region string, ca *store.CA, actor string) error
	CreateRegionWithCA(ctx context.Context, g *store.Region, ca *store.CA, actor string) error
}

var _ RegionStore = (*store.Store)(nil)

// CreateRegion stores region g together with its own operational CA,
// signed by the root, in one transaction (store.CreateRegionWithCA), so a
// failure or a crash never leaves the region without its CA or the CA
// without its region. The CA's key is made first, in the key store (and,
// with shared keys, in the database); a failed create leaves that key
// unused, under a label no CA record names. A taken name, or a name that
// still has an active CA, wraps store.ErrDuplicate. The caller validates g.
func (r *Registry) CreateRegion(ctx context.Context, g *store.Region, actor string) (*Authority, error) {
	rs, ok := r.st.(RegionStore)
	if !ok {
		return nil, errors.New("ca: this registry's store keeps no regions")
	}
	root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
	if err != nil {
		return nil, err
	}
	row, signer, err := r.create(ctx, PurposeRegional, g.Name, root.Signer)
	if err != nil {
		return nil, err
	}
	if err := rs.CreateRegionWithCA(ctx, g, &row, actor); err != nil {
		return nil, err
	}
	r.keep(row.ID, signer)
	r.invalidate()
	r.opts.Logger.InfoContext(ctx, "created region with its CA", "region", g.Name, "id", row.ID)
	return &Authority{CA: row, Cert: signer.Certificate(), Signer: signer}, nil
}

// AddRegionalCA creates the operational CA of region, signed by the root,
// with a fresh key in the key store (shared with other nodes as every CA
// key is), and records it with ca.created in one transaction that checks
// the region exists. A region that has a CA already wraps
// store.ErrDuplicate, an unknown one store.ErrNotFound; then nothing is
// stored (the key just generated stays unused in the key store).
func (r *Registry) AddRegionalCA(ctx context.Context, region, actor string) (*Authority, error) {
	rs, ok := r.st.(RegionStore)
	if !ok {
		return nil, errors.New("ca: this registry's store keeps no regions")
	}
	if a, err := r.RegionalCA(ctx, region); err == nil {
		return nil, fmt.Errorf("ca: region %s has its CA %s already: %w", region, a.ID, store.ErrDuplicate)
	} else if !errors.Is(err, ErrNoCA) {
		return nil, err
	}
	root, err := r.IssuerFor(ctx, pki.PurposeRoot, "")
	if err != nil {
		return nil, err
	}
	row, signer, err := r.create(ctx, PurposeRegional, region, root.Signer)
	if err != nil {
		return nil, err
	}
	if err := rs.InsertRegionCA(ctx, region, &row, actor); err != nil {
		return nil, err
	}
	r.keep(row.ID, signer)
	r.invalidate()
	r.opts.Logger.InfoContext(ctx, "created regional CA", "region", region, "id", row.ID)
	return &Authority{CA: row, Cert: signer.Certificate(), Signer: signer}, nil
}

// RegionalCA returns the active CA of region, with its signer; without one
// the error wraps ErrNoCA.
func (r *Registry) RegionalCA(ctx context.Context, region string) (*Authority, error) {
	return r.IssuerFor(ctx, PurposeRegional, region)
}

// OperationalFor returns the CA that issues the operational certificates
// of devices homed in region: the region's own CA when it has one, else
// the shared operational CA (also for region "", a device without a home).
// It looks the regional CA up in the cached view, so a region without one
// costs no database read; a CA added on another node is used here once
// the view is refreshed (at once when notices arrive, else within the
// refresh interval).
func (r *Registry) OperationalFor(ctx context.Context, region string) (*Authority, error) {
	if region != "" {
		v, err := r.current(ctx, false)
		if err != nil {
			return nil, err
		}
		if v.active(PurposeRegional, region) != nil {
			return r.RegionalCA(ctx, region)
		}
	}
	return r.IssuerFor(ctx, pki.PurposeOperational, "")
}

// NeedsReissue reports whether a device homed in region, holding cert,
// should renew to get its certificate from the CA that issues for that
// region now (OperationalFor): cert's issuer is another CA and one of the
// two is a regional CA. A move between regions that both use the shared
// operational CA needs no new certificate, and neither does a rotation of
// the shared CA (the rotation's overlap covers it). It answers from the
// cached view.
func (r *Registry) NeedsReissue(ctx context.Context, cert *x509.Certificate, region string) (bool, error) {
	want, err := r.OperationalFor(ctx, region)
	if err != nil {
		return false, err
	}
	v, err := r.current(ctx, false)
	if err != nil {
		return false, err
	}
	var issuer *Authority
	for _, a := range v.cas {
		if len(cert.AuthorityKeyId) > 0 && bytes.Equal(a.Cert.SubjectKeyId, cert.AuthorityKeyId) {
			issuer = a
			break
		}
	}
	switch {
	case issuer == nil:
		return pki.Purpose(want.Purpose) == PurposeRegional, nil
	case issuer.ID == want.ID:
		return false, nil
	}
	return pki.Purpose(issuer.Purpose) == PurposeRegional || pki.Purpose(want.Purpose) == PurposeRegional, nil
}
