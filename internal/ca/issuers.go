package ca

import (
	"context"
	"sync"

	"github.com/muster-iot/muster/internal/revocation"
)

// unloadable remembers CA keys that failed to load, so the revocation
// service, which asks for issuers four times a second, does not retry a
// missing key of a retired CA on every refresh.
type unloadable struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (u *unloadable) has(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ids[id]
}

func (u *unloadable) add(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids == nil {
		u.ids = map[string]bool{}
	}
	u.ids[id] = true
}

// Issuers lists every CA of the registry, retired ones included, for the
// revocation service: certificates of a retired CA can still be revoked
// and asked about. It answers from the cached view. A CA whose key this
// node cannot load is listed without a signer: its certificates are still
// refused when revoked, but no CRL or OCSP answer is signed for it here.
func (r *Registry) Issuers(ctx context.Context) ([]revocation.Issuer, error) {
	v, err := r.current(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make([]revocation.Issuer, 0, len(v.cas))
	for _, a := range v.cas {
		iss := revocation.Issuer{ID: a.ID, Certificate: a.Cert}
		if a.KeyLabel != "" && !r.noKey.has(a.ID) {
			s, err := r.signer(ctx, a)
			if err != nil {
				r.opts.Logger.WarnContext(ctx, "CA key not loadable on this node; its CRL and OCSP answers are left to nodes that hold it", "id", a.ID, "err", err)
				r.noKey.add(a.ID)
			} else {
				iss.CA = s
			}
		}
		out = append(out, iss)
	}
	return out, nil
}
