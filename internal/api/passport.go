package api

import (
	"net/http"

	"github.com/muster-iot/muster/internal/fleet"
)

// passport answers with the device's passport; the route offers it as
// Markdown too (?format=md), which the reply step renders.
func (s *Server) passport(r *http.Request) (fleet.Passport, error) {
	d, events, err := s.deviceEvents(r)
	if err != nil {
		return fleet.Passport{}, err
	}
	return fleet.BuildPassport(d, events), nil
}
