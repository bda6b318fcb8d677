package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/store"
)

// ProvisioningStore keeps provisioning templates, the requests waiting for
// approval and installers' claims.
type ProvisioningStore interface {
	PutTemplate(ctx context.Context, name string, doc json.RawMessage, create bool, actor string) (*store.TemplateRecord, error)
	Template(ctx context.Context, name string) (*store.TemplateRecord, error)
	ListTemplates(ctx context.Context) ([]store.TemplateRecord, error)
	DeleteTemplate(ctx context.Context, name, actor string) error
	PendingApprovals(ctx context.Context) ([]store.ProvisioningRequest, error)
	DecideApproval(ctx context.Context, id string, approve bool, reason, actor string) (*store.ProvisioningRequest, error)
	CreateClaim(ctx context.Context, c *store.Claim, actor string) error
}

func (s *Server) createTemplate(r *http.Request, in *provision.Template) (*store.TemplateRecord, error) {
	return s.putTemplate(r, in, true)
}

func (s *Server) updateTemplate(r *http.Request, in *provision.Template) (*store.TemplateRecord, error) {
	name := r.PathValue("name")
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return nil, validationError("name", "the template in the body is %q, the path names %q; a template cannot be renamed", in.Name, name)
	}
	return s.putTemplate(r, in, false)
}

// putTemplate validates a template (filling in its defaults, so the stored
// version says exactly what applies) and stores it as a new version.
func (s *Server) putTemplate(r *http.Request, in *provision.Template, create bool) (*store.TemplateRecord, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	rec, err := s.store.PutTemplate(r.Context(), in.Name, doc, create, principal(r).Actor())
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil, errorf(http.StatusConflict, codeDuplicate, "name", "template %q exists already; change it with PUT /v1/templates/%s", in.Name, in.Name)
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("template", in.Name)
	}
	return rec, err
}

func (s *Server) listTemplates(r *http.Request) (list[store.TemplateRecord], error) {
	ts, err := s.store.ListTemplates(r.Context())
	return listOf(ts), err
}

func (s *Server) getTemplate(r *http.Request) (*store.TemplateRecord, error) {
	name := r.PathValue("name")
	rec, err := s.store.Template(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("template", name)
	}
	return rec, err
}

func (s *Server) deleteTemplate(r *http.Request) error {
	name := r.PathValue("name")
	err := s.store.DeleteTemplate(r.Context(), name, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("template", name)
	}
	return err
}
