package client

import (
	"slices"

	"github.com/muster-iot/muster/internal/fleet"
)

// The device record and its parts are the registry's own types, re-exported
// by alias (docs/decisions/0004-sdk-type-aliases.md): code outside this
// module can name and read them, and there is one definition to keep right.
type (
	// Device is the lifecycle record of one device.
	Device = fleet.Device
	// Identity says which physical unit a device is.
	Identity = fleet.Identity
	// Manufacturing documents how a unit was built.
	Manufacturing = fleet.Manufacturing
	// QCResult is one quality-control test on the line.
	QCResult = fleet.QCResult
	// AssemblyStep is one step of the assembly process.
	AssemblyStep = fleet.AssemblyStep
	// Provisioning documents how a unit was configured before deployment.
	Provisioning = fleet.Provisioning
	// FirmwareVersion is one installed firmware or software component.
	FirmwareVersion = fleet.FirmwareVersion
	// NetworkConfig is the network set-up a device was given.
	NetworkConfig = fleet.NetworkConfig
	// SecurityMeasures records how a device protects its identity.
	SecurityMeasures = fleet.SecurityMeasures
	// Registration records a device's association with other systems.
	Registration = fleet.Registration
	// TestResult is one test or validation run during provisioning.
	TestResult = fleet.TestResult
	// Inventory is the asset-management view of a device.
	Inventory = fleet.Inventory
	// Location is where a device is installed.
	Location = fleet.Location
	// Lifecycle is a device's state and its state timeline.
	Lifecycle = fleet.Lifecycle
	// StateChange is one entry of the state timeline.
	StateChange = fleet.StateChange
	// MaintenanceItem documents diagnosing and resolving one problem.
	MaintenanceItem = fleet.MaintenanceItem
	// EndOfLife documents decommissioning, wipe and disposal.
	EndOfLife = fleet.EndOfLife
	// WipeAttestation is the evidence that sensitive data was destroyed.
	WipeAttestation = fleet.WipeAttestation
	// Disposal records the physical fate of a device.
	Disposal = fleet.Disposal
	// ComplianceItem is one standard or control a device is declared against.
	ComplianceItem = fleet.ComplianceItem
	// Component is one entry of a device's bill of materials.
	Component = fleet.Component
	// Event is one entry of a hash-chained history or of the audit log.
	Event = fleet.Event
	// ChainBreak names the first event at which a chain stops verifying.
	ChainBreak = fleet.ChainBreak
	// State is a device's lifecycle state.
	State = fleet.State

	// Passport is a device's whole life in one document. Its Markdown
	// method renders it the way PassportMarkdown's server answer does.
	Passport = fleet.Passport
	// PassportManufacturing is how a passport summarises manufacturing.
	PassportManufacturing = fleet.PassportManufacturing
	// BOMSummary is the bill of materials as a passport shows it.
	BOMSummary = fleet.BOMSummary
	// PassportLifecycle is a passport's state timeline.
	PassportLifecycle = fleet.PassportLifecycle
	// PassportHistory is a passport's verified history.
	PassportHistory = fleet.PassportHistory
)

// The lifecycle states (docs/lifecycle.md).
const (
	StateManufactured   = fleet.StateManufactured
	StatePending        = fleet.StatePending
	StateRejected       = fleet.StateRejected
	StateProvisioned    = fleet.StateProvisioned
	StateActive         = fleet.StateActive
	StateQuarantined    = fleet.StateQuarantined
	StateSuspended      = fleet.StateSuspended
	StateReprovisioning = fleet.StateReprovisioning
	StateDecommissioned = fleet.StateDecommissioned
	StateRefurbished    = fleet.StateRefurbished
	StateDisposed       = fleet.StateDisposed
)

// States returns every lifecycle state in lifecycle order, for menus and
// shell completion.
func States() []State { return slices.Clone(fleet.States) }

// AllowedFrom returns the states a device in state s may move to, the same
// answer the server gives; it lets a client offer only valid choices.
func AllowedFrom(s State) []State { return fleet.AllowedFrom(s) }

// Verification is the result of verifying a hash chain: a device history or
// the fleet audit log.
type Verification struct {
	OK     bool        `json:"ok"`
	Events int64       `json:"events"`
	Break  *ChainBreak `json:"break,omitempty"`
}
