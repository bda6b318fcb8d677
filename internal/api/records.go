package api

import (
	"net/http"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// Records are entries appended to one of a device's lists: quality-control
// results, provisioning test results and maintenance items. Each is checked
// on its own, stamped with the request time when it has none, appended in
// one update and recorded as its own event.

func (s *Server) addQC(r *http.Request, in *fleet.QCResult) (*fleet.Device, error) {
	return appendRecord(s, r, fleet.EventQC, *in, fleet.ValidateQC, func(d *fleet.Device, q fleet.QCResult, now time.Time) fleet.QCResult {
		q.At = orNow(q.At, now)
		d.Manufacturing.QC = append(d.Manufacturing.QC, q)
		return q
	})
}

func (s *Server) addTest(r *http.Request, in *fleet.TestResult) (*fleet.Device, error) {
	return appendRecord(s, r, fleet.EventTest, *in, fleet.ValidateTest, func(d *fleet.Device, t fleet.TestResult, now time.Time) fleet.TestResult {
		t.At = orNow(t.At, now)
		d.Provisioning.Tests = append(d.Provisioning.Tests, t)
		return t
	})
}

func (s *Server) addMaintenance(r *http.Request, in *fleet.MaintenanceItem) (*fleet.Device, error) {
	return appendRecord(s, r, fleet.EventMaintenance, *in, fleet.ValidateMaintenance, func(d *fleet.Device, m fleet.MaintenanceItem, now time.Time) fleet.MaintenanceItem {
		m.At = orNow(m.At, now)
		d.Maintenance = append(d.Maintenance, m)
		return m
	})
}

// appendRecord validates rec, then adds it to the device with add, which
// returns the record as stored; that record is the event's data.
func appendRecord[T any](s *Server, r *http.Request, typ string, rec T, validate func(T) error,
	add func(d *fleet.Device, rec T, now time.Time) T) (*fleet.Device, error) {
	if err := validate(rec); err != nil {
		return nil, err
	}
	return s.changeDevice(r, typ, func(d *fleet.Device, now time.Time, _ string) (any, error) {
		return add(d, rec, now), nil
	})
}
