// Package fleet holds Muster's device record, its lifecycle rules and its
// hash-chained history. It is pure: no I/O, no storage, no clocks of its own,
// so every rule here can be tested exhaustively and reused by every adapter.
package fleet

import (
	"encoding/json"
	"time"
)

// Device is the lifecycle record of one device, from the manufacturing line
// to disposal. Fields are grouped the way an operator reads them; free-form
// data that Muster does not interpret goes into Attributes.
type Device struct {
	ID string `json:"id"`
	// Version increases by one with every change; updates may name the
	// version they read to detect lost updates.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	Identity      Identity          `json:"identity"`
	Manufacturing Manufacturing     `json:"manufacturing"`
	Provisioning  Provisioning      `json:"provisioning"`
	Inventory     Inventory         `json:"inventory"`
	Lifecycle     Lifecycle         `json:"lifecycle"`
	Maintenance   []MaintenanceItem `json:"maintenance,omitempty"`
	EndOfLife     EndOfLife         `json:"endOfLife,omitzero"`
	Compliance    []ComplianceItem  `json:"compliance,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
}

// Identity says which physical unit this is. Serial is unique per factory
// (manufacturer) and model.
type Identity struct {
	Serial           string `json:"serial"`
	Model            string `json:"model"`
	HardwareRevision string `json:"hardwareRevision,omitempty"`
	Factory          string `json:"factory"`
	Batch            string `json:"batch,omitempty"`
}

// Manufacturing documents how the unit was built.
type Manufacturing struct {
	// BOM is a CycloneDX (1.5 or later) JSON document, stored byte for byte as
	// it was given; its components are indexed for queries by the store.
	BOM      json.RawMessage `json:"bom,omitempty"`
	QC       []QCResult      `json:"qc,omitempty"`
	Assembly []AssemblyStep  `json:"assembly,omitempty"`
}

// QCResult is one quality-control test on the line.
type QCResult struct {
	Test         string             `json:"test"`
	Result       string             `json:"result"` // pass | fail | other text
	Measurements map[string]float64 `json:"measurements,omitempty"`
	Station      string             `json:"station,omitempty"`
	At           time.Time          `json:"at"`
}

// AssemblyStep is one step of the assembly process.
type AssemblyStep struct {
	Step     string    `json:"step"`
	Station  string    `json:"station,omitempty"`
	Operator string    `json:"operator,omitempty"`
	At       time.Time `json:"at"`
}

// Provisioning documents how the unit was configured before deployment.
type Provisioning struct {
	Firmware     []FirmwareVersion `json:"firmware,omitempty"`
	Network      NetworkConfig     `json:"network,omitzero"`
	Security     SecurityMeasures  `json:"security,omitzero"`
	Registration Registration      `json:"registration,omitzero"`
	Tests        []TestResult      `json:"tests,omitempty"`
}

// FirmwareVersion is one installed firmware or software component.
type FirmwareVersion struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	// SBOMRef points at the software bill of materials for this version
	// (a URL, a digest or a document id).
	SBOMRef     string    `json:"sbomRef,omitempty"`
	InstalledAt time.Time `json:"installedAt,omitzero"`
}

// NetworkConfig is the network set-up the device was given.
type NetworkConfig struct {
	Hostname    string            `json:"hostname,omitempty"`
	MAC         string            `json:"mac,omitempty"`
	IPAddresses []string          `json:"ipAddresses,omitempty"`
	Settings    map[string]string `json:"settings,omitempty"`
}

// Key storage locations accepted in SecurityMeasures.KeyStorage.
const (
	KeyStorageSecureElement = "secure-element"
	KeyStorageTPM           = "tpm"
	KeyStorageSoftware      = "software"
)

// SecurityMeasures records how the device protects its identity.
type SecurityMeasures struct {
	KeyType    string   `json:"keyType,omitempty"`    // e.g. ecdsa-p256
	KeyStorage string   `json:"keyStorage,omitempty"` // secure-element | tpm | software
	SecureBoot bool     `json:"secureBoot,omitempty"`
	Measures   []string `json:"measures,omitempty"` // free list: disk encryption, debug ports fused, ...
}

// Registration records the unit's association with networks or systems.
type Registration struct {
	RegisteredAt time.Time         `json:"registeredAt,omitzero"`
	System       string            `json:"system,omitempty"`
	ExternalID   string            `json:"externalId,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
}

// TestResult is one test or validation run during provisioning.
type TestResult struct {
	Test   string    `json:"test"`
	Result string    `json:"result"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Inventory is the asset-management view of the device.
type Inventory struct {
	Location Location `json:"location,omitzero"`
	Owner    string   `json:"owner,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Tags     []string `json:"tags,omitempty"`
}

// Location is where the device is installed.
type Location struct {
	Site string   `json:"site,omitempty"`
	Lat  *float64 `json:"lat,omitempty"`
	Lon  *float64 `json:"lon,omitempty"`
}

// Lifecycle is the device's state and every state change it went through.
type Lifecycle struct {
	State          State         `json:"state"`
	StateChangedAt time.Time     `json:"stateChangedAt"`
	Changes        []StateChange `json:"changes,omitempty"`
}

// StateChange is one entry in the device's state timeline.
type StateChange struct {
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
}

// MaintenanceItem documents diagnosing and resolving one problem.
type MaintenanceItem struct {
	Problem    string    `json:"problem"`
	Diagnosis  string    `json:"diagnosis,omitempty"`
	Action     string    `json:"action,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	Technician string    `json:"technician,omitempty"`
	At         time.Time `json:"at"`
}

// EndOfLife documents retirement: why, how data was wiped, and where the
// hardware went.
type EndOfLife struct {
	DecommissionReason string           `json:"decommissionReason,omitempty"`
	DecommissionedAt   *time.Time       `json:"decommissionedAt,omitempty"`
	Wipe               *WipeAttestation `json:"wipe,omitempty"`
	Disposal           *Disposal        `json:"disposal,omitempty"`
}

// WipeAttestation is the evidence that sensitive data was destroyed.
type WipeAttestation struct {
	Method   string    `json:"method"` // e.g. nist-800-88-purge, crypto-erase
	Evidence string    `json:"evidence,omitempty"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// Disposal records the physical fate of the device.
type Disposal struct {
	Method      string    `json:"method"` // recycle | destroy | return | refurbish
	Facility    string    `json:"facility,omitempty"`
	Certificate string    `json:"certificate,omitempty"`
	At          time.Time `json:"at"`
}

// ComplianceItem is one standard or control the device is declared against.
type ComplianceItem struct {
	Standard  string    `json:"standard"` // e.g. ETSI EN 303 645
	Control   string    `json:"control,omitempty"`
	Status    string    `json:"status"` // compliant | non-compliant | not-assessed | exempt
	Evidence  string    `json:"evidence,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
}
