package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// maxDecisions bounds the requests one approve or reject call decides.
const maxDecisions = 1000

// decisionRequest is the body of POST /v1/approvals/approve and /reject.
type decisionRequest struct {
	IDs    []string `json:"ids"`
	Reason string   `json:"reason,omitempty"`
}

// decisionResult is the outcome for one request id; Error is set when
// that request could not be decided (the others still are).
type decisionResult struct {
	ID     string `json:"id"`
	Status string `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (s *Server) listApprovals(r *http.Request) (list[store.ProvisioningRequest], error) {
	qs, err := s.store.PendingApprovals(r.Context())
	return listOf(qs), err
}

func (s *Server) approve(r *http.Request, in *decisionRequest) (list[decisionResult], error) {
	return s.decide(r, in, true)
}

func (s *Server) reject(r *http.Request, in *decisionRequest) (list[decisionResult], error) {
	if strings.TrimSpace(in.Reason) == "" {
		return list[decisionResult]{}, validationError("reason", "is required: say why the devices are rejected")
	}
	return s.decide(r, in, false)
}

// decide approves or rejects each request on its own: one that was
// decided meanwhile does not stop the others.
func (s *Server) decide(r *http.Request, in *decisionRequest, approve bool) (list[decisionResult], error) {
	switch {
	case len(in.IDs) == 0:
		return list[decisionResult]{}, validationError("ids", "name at least one request id (muster approvals list shows them)")
	case len(in.IDs) > maxDecisions:
		return list[decisionResult]{}, validationError("ids", "at most %d ids per call", maxDecisions)
	case len(in.Reason) > fleet.MaxTextLen:
		return list[decisionResult]{}, validationError("reason", "is longer than %d characters", fleet.MaxTextLen)
	}
	out := make([]decisionResult, 0, len(in.IDs))
	for _, id := range in.IDs {
		q, err := s.store.DecideApproval(r.Context(), id, approve, in.Reason, principal(r).Actor())
		switch {
		case err == nil:
			out = append(out, decisionResult{ID: id, Status: q.Status})
		case errors.Is(err, store.ErrNotFound):
			out = append(out, decisionResult{ID: id, Error: "no such provisioning request"})
		case errors.Is(err, store.ErrVersionMismatch):
			out = append(out, decisionResult{ID: id, Error: "not pending any more (decided already)"})
		default:
			return list[decisionResult]{}, err
		}
	}
	return listOf(out), nil
}
