// Package region is Muster's regions: the regional endpoints devices are
// sent to, the signed bootstrap document that lists them, the allocation
// policies that pick a device's home region (lowest-latency, geo,
// weighted, static, hook), re-homing with hysteresis from the device's
// periodic measurements, and draining. docs/regions.md says exactly how
// each decision is made.
package region

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// Region and Location are the store's records; this package validates
// and decides with them.
type (
	Region   = store.Region
	Location = store.Coordinates
)

// Device attributes that hold a device's home region and the numbers
// behind it. They are written in the same transaction as the provisioning
// or re-homing that set them.
const (
	// AttrHome is the device's home region. The store finds a region's
	// devices (drain, counts, the check before a deletion) by it, through
	// the attribute index.
	AttrHome = store.AttrRegionHome
	// AttrPolicy is the policy that chose it.
	AttrPolicy = "muster.region.policy"
	// AttrMeasurements is the last measurements a decision used, as JSON
	// {"region": medianMs}.
	AttrMeasurements = "muster.region.rttMs"
	// AttrStreak counts consecutive reports in which one other region was
	// better by the hysteresis margin: "region:count".
	AttrStreak = "muster.region.streak"
)

// Device history events of regions.
const (
	// EventRehomed: the device's home region changed after provisioning
	// (data: rehomeData).
	EventRehomed = "device.rehomed"
	// EventStreak: a report counted towards, or reset, a re-homing
	// (data: streakData).
	EventStreak = "device.region_streak"
)

// ValidStatus reports whether s is a region status.
func ValidStatus(s string) bool {
	return s == store.RegionEnabled || s == store.RegionDraining || s == store.RegionDisabled
}

// Validate checks a region before it is stored and fills in defaults
// (status enabled). Errors are *fleet.FieldError naming the field.
func Validate(g *Region) error {
	if err := fleet.ValidName("name", g.Name); err != nil {
		return err
	}
	if strings.ContainsAny(g.Name, "/:+") {
		// Region names go into URL paths and attribute values.
		return &fleet.FieldError{Field: "name", Message: fmt.Sprintf("%q: use letters, digits, '.', '_' and '-' only", g.Name)}
	}
	for _, f := range []struct {
		field, value string
		schemes      []string
	}{
		{"provisionUrl", g.ProvisionURL, []string{"https"}},
		{"mqttUrl", g.MQTTURL, []string{"mqtts", "ssl", "tls", "wss"}},
		{"probeUrl", g.ProbeURL, []string{"https"}},
	} {
		if err := checkURL(f.field, f.value, f.schemes); err != nil {
			return err
		}
	}
	if g.Location != nil {
		if err := ValidLocation(*g.Location); err != nil {
			return &fleet.FieldError{Field: "location", Message: err.Error()}
		}
	}
	if g.Weight < 0 || g.Weight > 1_000_000 {
		return &fleet.FieldError{Field: "weight", Message: "must be between 0 and 1000000"}
	}
	if g.Status == "" {
		g.Status = store.RegionEnabled
	}
	if !ValidStatus(g.Status) {
		return &fleet.FieldError{Field: "status", Message: fmt.Sprintf("%q is not enabled, draining or disabled", g.Status)}
	}
	return nil
}

func checkURL(field, v string, schemes []string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
		return &fleet.FieldError{Field: field, Message: fmt.Sprintf("%q is not a %s URL with a host", v, strings.Join(schemes, " or "))}
	}
	return nil
}

// ValidLocation checks latitude and longitude ranges.
func ValidLocation(l Location) error {
	switch {
	case math.IsNaN(l.Lat) || l.Lat < -90 || l.Lat > 90:
		return errors.New("latitude must be between -90 and 90")
	case math.IsNaN(l.Lon) || l.Lon < -180 || l.Lon > 180:
		return errors.New("longitude must be between -180 and 180")
	}
	return nil
}

// ParseLocation reads "LAT,LON" in decimal degrees.
func ParseLocation(s string) (*Location, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return nil, fmt.Errorf("location %q: write LAT,LON in decimal degrees, such as 48.85,2.35", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("location %q: write LAT,LON in decimal degrees, such as 48.85,2.35", s)
	}
	l := Location{Lat: lat, Lon: lon}
	if err := ValidLocation(l); err != nil {
		return nil, fmt.Errorf("location %q: %w", s, err)
	}
	return &l, nil
}

// earthRadiusKm is the mean earth radius (IUGG).
const earthRadiusKm = 6371.0088

// DistanceKm is the great-circle distance between a and b by the
// haversine formula on a sphere of the mean earth radius.
func DistanceKm(a, b Location) float64 {
	rad := math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}
