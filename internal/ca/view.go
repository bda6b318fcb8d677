package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// view is the CA table as one node last read it, with the certificates
// parsed and the trust anchors worked out. It is immutable once built.
type view struct {
	loaded time.Time
	cas    []*Authority // oldest first
	byID   map[string]*Authority
	// trusted are the CAs that vouch for certificates now: active ones and
	// retiring ones within their overlap.
	trusted []*Authority
	anchors pki.Anchors
}

// current returns the cached view, reading the CA table again when the
// view is older than the refresh interval or force is set. When another
// goroutine is reading it already, a stale view is returned instead of
// waiting (unless forced), so verification never queues behind the database.
func (r *Registry) current(ctx context.Context, force bool) (*view, error) {
	v := r.view.Load()
	start := r.now()
	if v != nil && !force && start.Sub(v.loaded) < r.opts.RefreshInterval {
		return v, nil
	}
	if v != nil && !force {
		// One caller reloads a stale view; the others use it meanwhile.
		if !r.refresh.TryLock() {
			return v, nil
		}
	} else {
		r.refresh.Lock()
	}
	defer r.refresh.Unlock()
	if nv := r.view.Load(); nv != nil && !nv.loaded.Before(start) {
		return nv, nil // loaded by another caller while this one waited
	}
	rows, err := r.st.ListCAs(ctx, store.CAFilter{})
	if err != nil {
		return nil, fmt.Errorf("ca: read the CA registry: %w", err)
	}
	nv, err := r.build(ctx, rows)
	if err != nil {
		return nil, err
	}
	r.view.Store(nv)
	return nv, nil
}

// Changed makes the next lookup read the CA table again: a node calls it
// when it hears that another node changed the registry (a factory added, a
// CA rotated or retired; see internal/notify), so the change applies here
// at once instead of after RefreshInterval.
func (r *Registry) Changed() { r.invalidate() }

// invalidate makes the next lookup read the CA table, after this node
// changed it.
func (r *Registry) invalidate() {
	if v := r.view.Load(); v != nil {
		stale := *v
		stale.loaded = time.Time{}
		r.view.Store(&stale)
	}
}

// build parses rows into a view. Retiring CAs whose overlap has ended are
// marked retired in the database on the way, best effort: every node
// reaches the same verdict from the same clock, so a failed update only
// delays the bookkeeping.
func (r *Registry) build(ctx context.Context, rows []store.CA) (*view, error) {
	now := r.now()
	v := &view{loaded: now, byID: make(map[string]*Authority, len(rows))}
	for _, row := range rows {
		cert, err := ParseCertificatePEM([]byte(row.CertPEM))
		if err != nil {
			return nil, fmt.Errorf("ca: CA %s in the registry: %w", row.ID, err)
		}
		a := &Authority{CA: row, Cert: cert}
		if row.Status == store.CARetiring && row.RetireAt != nil && !now.Before(*row.RetireAt) {
			if err := r.st.SetCAStatus(ctx, row.ID, store.CARetired, row.RetireAt); err != nil {
				r.opts.Logger.WarnContext(ctx, "could not mark a CA retired", "id", row.ID, "err", err)
			}
			a.Status = store.CARetired
		}
		v.cas = append(v.cas, a)
		v.byID[row.ID] = a
		if a.Status == store.CARetired {
			continue
		}
		v.trusted = append(v.trusted, a)
		switch pki.Purpose(a.Purpose) {
		case pki.PurposeManufacturing:
			v.anchors.Manufacturing = append(v.anchors.Manufacturing, cert)
		case PurposeExternal:
			v.anchors.ExternalManufacturers = append(v.anchors.ExternalManufacturers, cert)
		case pki.PurposeOperational, PurposeRegional:
			v.anchors.Operational = append(v.anchors.Operational, cert)
		}
	}
	return v, nil
}

// active returns the active CA of a purpose and factory, or nil.
func (v *view) active(p pki.Purpose, factory string) *Authority {
	for _, a := range v.trusted {
		if a.Status == store.CAActive && a.Purpose == string(p) && a.Factory == factory {
			return a
		}
	}
	return nil
}

// Anchors implements pki.TrustSource: Muster's manufacturing CAs and the
// registered external manufacturer CAs for birth certificates, and the
// operational CAs for operational ones, retiring CAs included until their
// overlap ends. It answers from the cache, which it refreshes in the
// background of a call at most once per refresh interval.
func (r *Registry) Anchors(ctx context.Context) (pki.Anchors, error) {
	v, err := r.current(ctx, false)
	if err != nil {
		return pki.Anchors{}, err
	}
	return v.anchors, nil
}

var _ pki.TrustSource = (*Registry)(nil)

// ParseCertificatePEM parses the first CERTIFICATE block of a PEM text,
// skipping other blocks (such as a key or openssl's text dump).
func ParseCertificatePEM(text []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, text = pem.Decode(text)
		if block == nil {
			return nil, errors.New("no CERTIFICATE PEM block found")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}
