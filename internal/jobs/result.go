package jobs

// Result statuses.
const (
	// StatusOK means the row changed its device.
	StatusOK = "ok"
	// StatusUnchanged means the row's change was in place already: a
	// resubmitted manifest, or a device already in the wanted state.
	StatusUnchanged = "unchanged"
	// StatusError means the row was refused; Code and Message say why.
	StatusError = "error"
)

// Row error codes, as they appear in RowResult.Code.
const (
	CodeParse      = "parse"      // the row is not well-formed CSV or JSON
	CodeValidation = "validation" // a value is missing or not acceptable
	CodeNotFound   = "not_found"  // no device matches the row
	CodeConflict   = "conflict"   // registered already with different data
	CodeTransition = "transition" // the lifecycle does not allow the move
	CodeTemplate   = "template"   // the template does not serve the device
	CodeDuplicate  = "duplicate"  // an earlier row of the manifest names the same device
)

// RowResult is the outcome of one manifest row.
type RowResult struct {
	// Row is the row's 1-based number among the manifest's rows; Line is
	// where it starts in the manifest.
	Row      int64  `json:"row"`
	Line     int    `json:"line"`
	Serial   string `json:"serial,omitempty"`
	DeviceID string `json:"deviceId,omitempty"`
	Status   string `json:"status"`
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
}
