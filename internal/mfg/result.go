package mfg

import (
	"errors"
	"time"
)

// Result statuses.
const (
	StatusOK     = "ok"     // the device was registered and, when asked, certified
	StatusExists = "exists" // the serial was registered before; nothing new was issued
	StatusError  = "error"  // the row was refused; Code and Message say why
)

// Result is the outcome of one manifest row, as the API streams it back (one
// JSON object per line) and as the CLI writes it to its report.
type Result struct {
	Line     int    `json:"line"`
	Serial   string `json:"serial,omitempty"`
	Model    string `json:"model,omitempty"`
	DeviceID string `json:"deviceId,omitempty"`
	Status   string `json:"status"`
	Code     string `json:"code,omitempty"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message,omitempty"`
	// CertificatePEM is the unit's birth certificate (and its chain).
	CertificatePEM string `json:"certificatePem,omitempty"`
	// KeyPEM is the private key Muster minted for the unit (key mode mint).
	// It is sent once and never stored or sent again.
	KeyPEM string `json:"keyPem,omitempty"`
}

// ErrorResult is the result of a refused row. A *RowError gives its code,
// field and message; any other error is reported as CodeInternal with its
// text, so callers should pass only errors that are safe to show.
func ErrorResult(row Row, err error) Result {
	res := Result{Line: row.Line, Serial: row.Serial, Model: row.Model, Status: StatusError,
		Code: CodeInternal, Message: err.Error()}
	var rowErr *RowError
	if errors.As(err, &rowErr) {
		res.Code, res.Field, res.Message = rowErr.Code, rowErr.Field, rowErr.Message
	}
	return res
}

// Summary counts a batch's results. It is not safe for concurrent use.
type Summary struct {
	Rows     int `json:"rows"`
	OK       int `json:"ok"`
	Existing int `json:"existing"`
	Errors   int `json:"errors"`
	// ErrorsByCode counts the refused rows by RowError code.
	ErrorsByCode map[string]int `json:"errorsByCode,omitempty"`
	// Elapsed and RowsPerSec are set by Finish.
	Elapsed    time.Duration `json:"elapsedNs"`
	RowsPerSec float64       `json:"rowsPerSec"`
}

// Add counts one result. A status other than ok or exists counts as an error.
func (s *Summary) Add(r Result) {
	s.Rows++
	switch r.Status {
	case StatusOK:
		s.OK++
	case StatusExists:
		s.Existing++
	default:
		s.Errors++
		if s.ErrorsByCode == nil {
			s.ErrorsByCode = make(map[string]int)
		}
		s.ErrorsByCode[r.Code]++
	}
}

// Finish records how long the batch took and its throughput.
func (s *Summary) Finish(elapsed time.Duration) {
	s.Elapsed = elapsed
	s.RowsPerSec = 0
	if elapsed > 0 {
		s.RowsPerSec = float64(s.Rows) / elapsed.Seconds()
	}
}
