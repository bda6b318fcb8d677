package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/ca"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/store"
)

// defaultOverlap is how long a rotated CA stays trusted when the request
// does not say: long enough for a fleet to renew.
const defaultOverlap = 720 * time.Hour

// chainFile is one file of a CA export: a chain and the name `muster ca
// export` gives it.
type chainFile struct {
	ca.Chain
	FileName string `json:"fileName"`
}

// rotateRequest is the body of POST /v1/cas/rotate.
type rotateRequest struct {
	Purpose string `json:"purpose"` // operational, server, manufacturing or regional
	Factory string `json:"factory,omitempty"`
	// Region names the region whose CA a regional rotation replaces.
	Region string `json:"region,omitempty"`
	// Overlap is how long the old CA stays trusted, a Go duration (default 720h).
	Overlap string `json:"overlap,omitempty"`
}

func (s *Server) listCAs(r *http.Request) (list[store.CA], error) {
	cas, err := s.caRegistry()
	if err != nil {
		return list[store.CA]{}, err
	}
	q := r.URL.Query()
	rows, err := cas.List(r.Context(), store.CAFilter{Purpose: q.Get("purpose"), Factory: q.Get("factory"), Status: q.Get("status")})
	return listOf(rows), err
}

func (s *Server) caChains(r *http.Request) (list[chainFile], error) {
	cas, err := s.caRegistry()
	if err != nil {
		return list[chainFile]{}, err
	}
	chains, err := cas.Chains(r.Context())
	if err != nil {
		return list[chainFile]{}, err
	}
	out := make([]chainFile, 0, len(chains))
	for _, c := range chains {
		name, err := chainFileName(c)
		if err != nil {
			return list[chainFile]{}, err
		}
		out = append(out, chainFile{Chain: c, FileName: name})
	}
	return listOf(out), nil
}

// chainFileName names an exported chain: root.pem, <purpose>-chain.pem,
// manufacturing-<factory>-chain.pem or external-<factory>.pem, the factory
// escaped as mfg.SerialFileName escapes serials.
func chainFileName(c ca.Chain) (string, error) {
	switch c.Purpose {
	case pki.PurposeRoot:
		return "root.pem", nil
	case pki.PurposeManufacturing, ca.PurposeExternal:
		f, err := mfg.SerialFileName(c.Factory)
		if err != nil {
			return "", err
		}
		if c.Purpose == ca.PurposeExternal {
			return "external-" + f + ".pem", nil
		}
		return "manufacturing-" + f + "-chain.pem", nil
	}
	if c.Purpose == ca.PurposeRegional {
		r, err := mfg.SerialFileName(c.Factory)
		if err != nil {
			return "", err
		}
		return "regional-" + r + "-chain.pem", nil
	}
	return string(c.Purpose) + "-chain.pem", nil
}

func (s *Server) rotateCA(r *http.Request, in *rotateRequest) (*store.CA, error) {
	cas, err := s.caRegistry()
	if err != nil {
		return nil, err
	}
	p, err := pki.ParsePurpose(in.Purpose)
	if in.Purpose == string(ca.PurposeRegional) {
		p, err = ca.PurposeRegional, nil
	}
	if err != nil || p == pki.PurposeRoot {
		return nil, validationError("purpose", "%q cannot be rotated: use operational, server, manufacturing or regional", in.Purpose)
	}
	if (p == pki.PurposeManufacturing) != (in.Factory != "") {
		return nil, validationError("factory", "a manufacturing CA is rotated for one factory (name it); other CAs for none")
	}
	if (p == ca.PurposeRegional) != (in.Region != "") {
		return nil, validationError("region", "a regional CA is rotated for one region (name it); other CAs for none")
	}
	owner := in.Factory // the registry keeps a regional CA's region where a factory would be
	if p == ca.PurposeRegional {
		owner = in.Region
	}
	overlap := defaultOverlap
	if in.Overlap != "" {
		if overlap, err = time.ParseDuration(in.Overlap); err != nil || overlap < 0 {
			return nil, validationError("overlap", "must be a duration such as \"720h\", got %q", in.Overlap)
		}
	}
	a, err := cas.Rotate(r.Context(), p, owner, overlap, principal(r).Actor())
	switch {
	case errors.Is(err, ca.ErrNoCA) && p == ca.PurposeRegional:
		return nil, errorf(http.StatusNotFound, codeNotFound, "region", "%v (give the region a CA with muster regions update NAME --ca)", err)
	case errors.Is(err, ca.ErrNoCA):
		return nil, errorf(http.StatusNotFound, codeNotFound, "factory", "%v", err)
	case errors.Is(err, store.ErrVersionMismatch):
		return nil, errorf(http.StatusPreconditionFailed, codeVersionMismatch, "", "the CA was rotated by someone else meanwhile; list the CAs and decide again")
	case err != nil:
		return nil, err
	}
	return &a.CA, nil
}
