package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/alert"
	"github.com/muster-iot/muster/internal/store"
)

// IncidentRequest is the body of POST /v1/incidents.
type IncidentRequest struct {
	Title    string   `json:"title"`
	AlertIDs []string `json:"alertIds,omitempty"`
}

// IncidentUpdate is the body of PATCH /v1/incidents/{id}: alerts to link,
// a note to add, a state (open, closed) to move to; each optional.
type IncidentUpdate struct {
	AlertIDs []string `json:"alertIds,omitempty"`
	Note     string   `json:"note,omitempty"`
	State    string   `json:"state,omitempty"`
}

// IncidentList is a list of incidents.
type IncidentList struct {
	Items []store.Incident `json:"items"`
}

func checkTitle(title string) error {
	if strings.TrimSpace(title) == "" || len(title) > 200 {
		return validationError("title", "is required, at most 200 characters")
	}
	return nil
}

func (s *Server) createIncident(r *http.Request, in *IncidentRequest) (*store.Incident, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	if err := checkTitle(in.Title); err != nil {
		return nil, err
	}
	inc, err := ds.CreateIncident(r.Context(), in.Title, in.AlertIDs, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) {
		return nil, validationError("alertIds", "%s", strings.TrimPrefix(err.Error(), "store: "))
	}
	return inc, err
}

func (s *Server) listIncidents(r *http.Request) (*IncidentList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	n, err := pageLimit(r.URL.Query().Get("limit"))
	if err != nil {
		return nil, err
	}
	in, err := ds.ListIncidents(r.Context(), r.URL.Query().Get("state"), n)
	if err != nil {
		return nil, err
	}
	return &IncidentList{Items: in}, nil
}

func (s *Server) getIncident(r *http.Request) (*alert.IncidentReport, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	rep, err := alert.Report(r.Context(), ds, id, s.now())
	return rep, alertError("incident", id, err)
}

func (s *Server) updateIncident(r *http.Request, in *IncidentUpdate) (*store.Incident, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	switch in.State {
	case "", store.IncidentOpen, store.IncidentClosed:
	default:
		return nil, validationError("state", "state %q: use open or closed", in.State)
	}
	if len(in.Note) > 10000 {
		return nil, validationError("note", "is %d characters, at most 10000", len(in.Note))
	}
	id := r.PathValue("id")
	inc, err := ds.UpdateIncident(r.Context(), id, in.AlertIDs, in.Note, in.State, principal(r).Actor())
	if errors.Is(err, store.ErrNotFound) && strings.Contains(err.Error(), "alert") {
		return nil, validationError("alertIds", "%s", strings.TrimPrefix(err.Error(), "store: "))
	}
	return inc, alertError("incident", id, err)
}
