package audit

import (
	"errors"
	"fmt"
	"time"
)

// Params are the checks' thresholds. The zero value of a field means its
// default (see Defaults and docs/audit.md).
type Params struct {
	// CertExpiryWarning: device certificates expiring within this long
	// are reported. Default 30 days.
	CertExpiryWarning time.Duration
	// CAExpiryWarning: CA certificates expiring within this long are
	// reported. Default 90 days.
	CAExpiryWarning time.Duration
	// NotSeenAfter: live devices the gateway has not seen for this long
	// are reported. Default 30 days.
	NotSeenAfter time.Duration
	// MaxCertAge: operational certificates issued longer ago are reported.
	// Default 365 days.
	MaxCertAge time.Duration
	// MeteringLookback is how far back metering windows are read.
	// Default 24 hours.
	MeteringLookback time.Duration
	// TakeoverThreshold: a device whose sessions were taken over this
	// often within the lookback is reported for conflicting client ids.
	// Default 3.
	TakeoverThreshold int
	// MinRSABits and MinECBits are the smallest acceptable key sizes.
	// Defaults 2048 and 256.
	MinRSABits int
	MinECBits  int
}

// Defaults are the documented default thresholds.
func Defaults() Params {
	return Params{
		CertExpiryWarning: 30 * 24 * time.Hour,
		CAExpiryWarning:   90 * 24 * time.Hour,
		NotSeenAfter:      30 * 24 * time.Hour,
		MaxCertAge:        365 * 24 * time.Hour,
		MeteringLookback:  24 * time.Hour,
		TakeoverThreshold: 3,
		MinRSABits:        2048,
		MinECBits:         256,
	}
}

// withDefaults fills zero fields with their defaults and refuses negative
// ones.
func (p Params) withDefaults() (Params, error) {
	d := Defaults()
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"certificate expiry warning", &p.CertExpiryWarning, d.CertExpiryWarning},
		{"CA expiry warning", &p.CAExpiryWarning, d.CAExpiryWarning},
		{"not-seen period", &p.NotSeenAfter, d.NotSeenAfter},
		{"maximum certificate age", &p.MaxCertAge, d.MaxCertAge},
		{"metering lookback", &p.MeteringLookback, d.MeteringLookback},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return p, fmt.Errorf("audit: %s must not be negative", f.name)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"takeover threshold", &p.TakeoverThreshold, d.TakeoverThreshold},
		{"minimum RSA bits", &p.MinRSABits, d.MinRSABits},
		{"minimum EC bits", &p.MinECBits, d.MinECBits},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return p, errors.New("audit: " + f.name + " must not be negative")
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return p, nil
}
