package mfg

import (
	"encoding/json"
	"fmt"

	"github.com/muster-iot/muster/internal/fleet"
)

// MaxRowSize bounds one manifest row: one JSON line, or one CSV record
// including its quoted multi-line cells. It matches the API's body limit for
// one device, so a row that could not be registered alone is refused here.
const MaxRowSize = 1 << 20

// Row is one unit of a manufacturing manifest. The JSON tags are the JSON
// lines field names; CSV uses the same names in snake_case.
type Row struct {
	// Line is the 1-based line of the manifest where the row starts.
	Line int `json:"-"`
	// Err is set, as a *RowError, when the row could not be parsed; the
	// other fields then hold whatever could be read (often only Serial).
	Err error `json:"-"`

	Serial           string `json:"serial"`
	Model            string `json:"model"`
	HardwareRevision string `json:"hardwareRevision,omitempty"`
	// Batch defaults to the batch id when empty.
	Batch string `json:"batch,omitempty"`
	// CSR is a PEM certificate request made on the device (key mode csr).
	CSR string `json:"csr,omitempty"`
	// Certificate is the PEM birth certificate the maker's own CA issued
	// (key mode register, for factories with an external CA).
	Certificate string                  `json:"certificate,omitempty"`
	QC          []fleet.QCResult        `json:"qc,omitempty"`
	Assembly    []fleet.AssemblyStep    `json:"assembly,omitempty"`
	BOM         json.RawMessage         `json:"bom,omitempty"` // CycloneDX JSON; the model's BOM when empty
	Firmware    []fleet.FirmwareVersion `json:"firmware,omitempty"`
	Attributes  map[string]string       `json:"attributes,omitempty"`
}

// Row error codes, as they appear in RowError.Code and Result.Code.
const (
	CodeParse       = "parse"               // the row is not well-formed CSV or JSON
	CodeTooLarge    = "too_large"           // the row is larger than MaxRowSize
	CodeValidation  = "validation"          // a value is not acceptable (see Field)
	CodeScope       = "scope"               // model or serial outside the factory's scope
	CodeBOM         = "bom"                 // the CycloneDX document is not valid
	CodeCSRMissing  = "csr_missing"         // key mode csr and the row has no CSR
	CodeCSRInvalid  = "csr_invalid"         // the CSR is not usable
	CodeKeyReused   = "key_reused"          // the public key is another device's
	CodeCertMissing = "certificate_missing" // key mode register and the row has no certificate
	CodeCertInvalid = "certificate_invalid" // the maker's certificate is not usable
	CodeInternal    = "internal"            // Muster failed, not the row
)

// RowError is why one row was refused. It carries the row's line and serial
// so that it can be reported without the row, and unwraps to the cause
// (*fleet.FieldError, *ScopeError, ...) for errors.As.
type RowError struct {
	Line    int
	Serial  string
	Code    string
	Field   string // the device field at fault, when one is
	Message string
	Err     error
}

func (e *RowError) Error() string {
	if e.Serial != "" {
		return fmt.Sprintf("line %d (serial %s): %s", e.Line, e.Serial, e.Message)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Message)
}

func (e *RowError) Unwrap() error { return e.Err }

// parseError builds the error of a row that could not be read; cause, when
// not nil, is kept for errors.As.
func parseError(line int, serial string, cause error, message string) *RowError {
	return &RowError{Line: line, Serial: serial, Code: CodeParse, Message: message, Err: cause}
}

// tooLargeError builds the error of a row over MaxRowSize.
func tooLargeError(line int) *RowError {
	return &RowError{Line: line, Code: CodeTooLarge,
		Message: fmt.Sprintf("row is larger than %d KiB; move large documents such as the BOM into a per-model BOM file", MaxRowSize>>10)}
}
