// Package server assembles a Muster node: the data directory, the store, the
// certificate authorities, the admin API and (in later issues) the device
// listeners. cmd/muster only parses flags into a Config.
package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	regionpkg "github.com/muster-iot/muster/internal/region"
)

// Config is everything a node needs to start.
type Config struct {
	// DataDir holds the SQLite database, CA keys, admin.token and ca.pem.
	DataDir string
	// DatabaseURL selects PostgreSQL; empty means SQLite in DataDir.
	DatabaseURL string
	// APIAddr is the admin API's HTTPS listen address.
	APIAddr string
	// CAPassphrase unlocks the CA key files. When empty, CAPassphraseFile
	// is read; when both are empty, <DataDir>/ca.passphrase is used and
	// created with a random passphrase on first start.
	CAPassphrase     []byte
	CAPassphraseFile string
	// KeyAlgorithm for new CA keys: ecdsa-p256 (default), ecdsa-p384, rsa-3072.
	KeyAlgorithm string
	// TLSHosts are extra DNS names or IPs for the server certificates.
	TLSHosts []string
	// DeviceAddr is the device listener (HTTPS, client certificates
	// required): provisioning endpoints and, for devices, nothing else.
	DeviceAddr string
	// MQTTAddr is the device gateway (MQTT over TLS, client certificates
	// required); MQTTWSAddr, when set, also serves MQTT over WebSocket.
	MQTTAddr   string
	MQTTWSAddr string
	// PKIAddr serves CRLs and OCSP over plain HTTP, as RFC 5280 and RFC 6960
	// clients expect; empty disables it (they are on DeviceAddr too).
	PKIAddr string
	// Region is the region this node serves; DefaultRegion when empty.
	// A region named here (other than DefaultRegion) that does not exist
	// yet is registered from the node's listeners at start
	// (docs/regions.md).
	Region string
	// RegionHysteresis governs re-homing from device reports;
	// region.DefaultHysteresis when zero.
	RegionHysteresis regionpkg.Hysteresis
	// NodeID names this node among those sharing a database: leases,
	// metering windows and logs carry it. Empty means the host name.
	NodeID string
	// LeaseTTL is how long this node's leases (bulk jobs, CRL publication)
	// live without renewal, so how long a dead node's work waits before
	// another node takes it over; lease.DefaultTTL when zero.
	LeaseTTL time.Duration
	// JobRetention is how long finished bulk jobs (their stored manifest
	// and per-row results) are kept before one node deletes them; zero
	// keeps them until deleted by hand. `muster serve` defaults it to
	// jobs.DefaultRetention.
	JobRetention time.Duration
	// Detect tunes behaviour detection; the zero value is the default.
	Detect DetectConfig
	// Audit schedules the configuration audit and sets its thresholds.
	Audit AuditConfig
	// PKCS11 selects an HSM for CA keys instead of encrypted key files.
	PKCS11 *PKCS11Config
	Logger *slog.Logger
}

// DefaultRegion is the region of a node started without --region.
const DefaultRegion = "local"

// PKCS11Config names an HSM token through its PKCS#11 module.
type PKCS11Config struct {
	ModulePath string
	TokenLabel string
	PIN        string
}

// nodeID is NodeID, or the host name when it is empty.
func (c Config) nodeID() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "node"
}

func (c Config) path(name ...string) string {
	return filepath.Join(append([]string{c.DataDir}, name...)...)
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
