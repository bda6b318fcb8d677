package api

import (
	"net/http"

	"github.com/muster-iot/muster/internal/fleet"
)

// verifyResult is the answer of the history and audit-log verify routes.
type verifyResult struct {
	OK     bool `json:"ok"`
	Events int  `json:"events"`
	// Break is the first event that does not verify; absent when OK.
	Break *fleet.ChainBreak `json:"break,omitempty"`
}

func verify(events []fleet.Event) verifyResult {
	brk := fleet.VerifyChain(events)
	return verifyResult{OK: brk == nil, Events: len(events), Break: brk}
}

// deviceEvents reads the device named by {id}, scoped to the caller, and
// its history.
func (s *Server) deviceEvents(r *http.Request) (*fleet.Device, []fleet.Event, error) {
	d, err := s.loadDevice(r)
	if err != nil {
		return nil, nil, err
	}
	events, err := s.store.History(r.Context(), d.ID)
	if err != nil {
		return nil, nil, err
	}
	return d, events, nil
}

func (s *Server) deviceHistory(r *http.Request) (list[fleet.Event], error) {
	_, events, err := s.deviceEvents(r)
	return listOf(events), err
}

func (s *Server) verifyDeviceHistory(r *http.Request) (verifyResult, error) {
	_, events, err := s.deviceEvents(r)
	return verify(events), err
}

func (s *Server) auditLog(r *http.Request) (list[fleet.Event], error) {
	events, err := s.store.History(r.Context(), fleet.FleetSubject)
	return listOf(events), err
}

func (s *Server) verifyAuditLog(r *http.Request) (verifyResult, error) {
	events, err := s.store.History(r.Context(), fleet.FleetSubject)
	return verify(events), err
}
