package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// renew issues a new operational certificate to a device that proved
// itself with its current one (EST simplereenroll, JSON renew). The
// device keeps its state and record; the old certificate stays valid
// until it expires unless the template says to revoke it.
func (p *Pipeline) renew(ctx context.Context, a *attempt) (*Response, error) {
	id := a.req.Identity
	a.kind, a.requester, a.actor = store.RequestRenew, "device:"+id.DeviceID, "device/"+id.DeviceID
	dev, err := p.st.GetDevice(ctx, id.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse("operational certificate of unknown device %s", id.DeviceID)
	}
	if err != nil {
		return nil, fmt.Errorf("provision: device %s: %w", id.DeviceID, err)
	}
	a.dev = dev
	a.factory, a.model, a.serial = dev.Identity.Factory, dev.Identity.Model, dev.Identity.Serial
	name := a.req.Template
	if name == "" {
		name = dev.Attributes[AttrTemplate]
	}
	if name == "" {
		name = DefaultTemplate
	}
	t, v, err := p.templates.get(ctx, p.st, name, p.now())
	if errors.Is(err, errNoTemplate) {
		return nil, refuse("%v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	a.tmpl, a.tmplVersion = t, v
	if err := p.limit(a); err != nil {
		return nil, err
	}
	if resp, done, err := p.checkPrior(ctx, a); done || err != nil {
		return resp, err
	}
	switch dev.Lifecycle.State {
	case fleet.StateProvisioned, fleet.StateActive:
	default:
		return nil, refuse("a %s device cannot renew its certificate", dev.Lifecycle.State)
	}
	now := p.now()
	if na := id.Certificate.NotAfter; now.After(na) {
		grace := time.Duration(t.Renewal.ExpiredGrace)
		if !t.Renewal.AllowExpired || (grace > 0 && now.After(na.Add(grace))) {
			return nil, refuse("operational certificate expired at %s and template %s does not renew expired certificates; re-provision with the birth certificate", na.UTC(), t.Name)
		}
	}
	if err := p.checkCSR(ctx, a); err != nil {
		return nil, err
	}
	// RFC 7030 section 4.2.2: a re-enrollment names the same subject.
	if cn := a.csr.Subject.CommonName; cn != "" && cn != dev.ID {
		return nil, refuse("renewal CSR names subject %q, not the device %s", cn, dev.ID)
	}
	for _, u := range a.csr.URIs {
		if u.String() != pki.OperationalURI(dev.ID) {
			return nil, refuse("renewal CSR names URI %s, not the device %s", u, dev.ID)
		}
	}
	cert, signer, err := p.sign(ctx, a)
	if err != nil {
		return nil, err
	}
	var revoke *int
	if t.Renewal.RevokeOld {
		reason := revokeSuperseded
		revoke = &reason
	}
	q := a.request(store.RequestIssued)
	from := dev.Lifecycle.State
	data := provisionedData{RequestID: q.ID, Kind: a.kind, Template: t.Name, TemplateVersion: v, CAID: signer.ID,
		Serial: store.SerialHex(cert.SerialNumber), Region: p.region, RevokesOld: revoke != nil}
	_, err = p.commit(ctx, a, &store.ProvisioningCommit{
		Request: q, Certificate: certRecord(cert, signer.ID), RevokeOthers: revoke, Actor: a.actor,
		Update: func(d *fleet.Device) (*store.Change, error) {
			if d.Lifecycle.State != from {
				return nil, ErrConflict
			}
			return &store.Change{Type: EventRenewed, Data: data}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	p.log.InfoContext(ctx, "operational certificate renewed", "device", dev.ID, "serial", data.Serial)
	resp := p.response(dev.ID, cert, signer.Chain, Rendered{}, t.Name, v)
	p.placeStored(ctx, resp, dev.ID)
	return resp, nil
}
