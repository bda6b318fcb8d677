package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
	"github.com/muster-iot/muster/internal/vuln"
)

// VulnStore is what vulnerability scanning reads; *store.Store has it.
type VulnStore interface {
	Advisories(ctx context.Context, withDocs bool) ([]store.Advisory, error)
	BOMs(ctx context.Context) (map[string][]byte, error)
	EachAuditDevice(ctx context.Context, fn func(store.AuditDevice) error) error
}

// DeviceVulns is what one device runs that advisories affect.
type DeviceVulns struct {
	DeviceID string       `json:"deviceId"`
	Matches  []vuln.Match `json:"matches"`
}

// Advisories returns the ids of the advisories among the matches, sorted.
func (d DeviceVulns) Advisories() []string {
	var ids []string
	for _, m := range d.Matches {
		if !slices.Contains(ids, m.AdvisoryID) {
			ids = append(ids, m.AdvisoryID)
		}
	}
	slices.Sort(ids)
	return ids
}

// Scanner matches devices' firmware and BOM components against the stored
// advisories. It reads the advisories once, when it is made; BOMs are
// parsed and matched once per distinct document.
type Scanner struct {
	st      VulnStore
	ix      *vuln.Index
	n       int
	boms    map[string][]byte
	matched map[string][]vuln.Match // by BOM SHA-256
}

// NewScanner loads the stored advisories. A stored advisory that no longer
// parses is an error naming it: the import checked it, so the database
// was changed behind Muster's back.
func NewScanner(ctx context.Context, st VulnStore) (*Scanner, error) {
	stored, err := st.Advisories(ctx, true)
	if err != nil {
		return nil, err
	}
	advs := make([]*vuln.Advisory, 0, len(stored))
	for _, s := range stored {
		a, err := vuln.Parse([]byte(s.Doc))
		if err != nil {
			return nil, fmt.Errorf("audit: stored advisory %s: %w (import it again)", s.ID, err)
		}
		advs = append(advs, a)
	}
	return &Scanner{st: st, ix: vuln.NewIndex(advs), n: len(advs), matched: map[string][]vuln.Match{}}, nil
}

// Advisories is how many advisories the scanner matches against.
func (sc *Scanner) Advisories() int { return sc.n }

// Device matches one device record, its BOM included when it has one.
func (sc *Scanner) Device(d *fleet.Device) (DeviceVulns, error) {
	out := DeviceVulns{DeviceID: d.ID, Matches: sc.firmware(d.Provisioning.Firmware)}
	if len(d.Manufacturing.BOM) > 0 {
		ms, err := sc.bom(d.Manufacturing.BOM)
		if err != nil {
			return out, fmt.Errorf("device %s: %w", d.ID, err)
		}
		out.Matches = append(out.Matches, ms...)
	}
	return out, nil
}

// Fleet calls fn for every device that runs something an advisory affects.
func (sc *Scanner) Fleet(ctx context.Context, fn func(DeviceVulns) error) error {
	if sc.n == 0 {
		return nil
	}
	return sc.st.EachAuditDevice(ctx, func(d store.AuditDevice) error {
		dv, err := sc.match(ctx, d.ID, d.Firmware, d.BOMSHA256)
		if err != nil || len(dv.Matches) == 0 {
			return err
		}
		return fn(dv)
	})
}

// match matches one device's firmware and stored BOM.
func (sc *Scanner) match(ctx context.Context, id string, firmware []fleet.FirmwareVersion, bomSHA string) (DeviceVulns, error) {
	out := DeviceVulns{DeviceID: id, Matches: sc.firmware(firmware)}
	if bomSHA != "" {
		ms, err := sc.bomBySHA(ctx, bomSHA)
		if err != nil {
			return out, fmt.Errorf("device %s: %w", id, err)
		}
		out.Matches = append(out.Matches, ms...)
	}
	return out, nil
}

// firmware matches installed firmware versions by name.
func (sc *Scanner) firmware(fw []fleet.FirmwareVersion) []vuln.Match {
	var out []vuln.Match
	for _, f := range fw {
		out = append(out, sc.ix.Match(vuln.Software{Name: f.Component, Version: f.Version, Source: "firmware"})...)
	}
	return out
}

func (sc *Scanner) bomBySHA(ctx context.Context, sha string) ([]vuln.Match, error) {
	if ms, ok := sc.matched[sha]; ok {
		return ms, nil
	}
	if sc.boms == nil {
		boms, err := sc.st.BOMs(ctx)
		if err != nil {
			return nil, err
		}
		sc.boms = boms
	}
	ms, err := sc.bom(sc.boms[sha])
	if err != nil {
		return nil, err
	}
	sc.matched[sha] = ms
	return ms, nil
}

// bom matches a CycloneDX BOM's components: by package URL when a
// component has one (ecosystem and name), by name otherwise.
func (sc *Scanner) bom(raw []byte) ([]vuln.Match, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	comps, err := fleet.ParseBOM(raw)
	if err != nil {
		return nil, fmt.Errorf("stored BOM: %w", err)
	}
	var out []vuln.Match
	for _, c := range comps {
		vc := vuln.Software{Name: c.Name, Version: c.Version, Source: "sbom"}
		if eco, name, ok := vuln.FromPURL(c.PURL); ok {
			vc.Ecosystem, vc.Name = eco, name
		}
		out = append(out, sc.ix.Match(vc)...)
	}
	return out, nil
}

func checkVulnerable() Check {
	c := Check{ID: "vulnerable-firmware", Severity: SeverityHigh, Title: "Firmware or components with known vulnerabilities",
		Description: "A firmware version of the device record, or a component of the device's CycloneDX BOM, is affected by an imported OSV advisory (muster vulns import)."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		s, err := sc.scanner(ctx)
		if err != nil || s.Advisories() == 0 {
			return err
		}
		if err := sc.loadDevices(ctx); err != nil {
			return err
		}
		for id, d := range sc.devices {
			dv, err := s.match(ctx, id, d.firmware, d.bomSHA256)
			if err != nil {
				return err
			}
			if len(dv.Matches) == 0 {
				continue
			}
			var parts []string
			for _, m := range dv.Matches {
				p := fmt.Sprintf("%s %s (%s)", m.Component.Name, m.Component.Version, m.AdvisoryID)
				if len(m.Fixed) > 0 {
					p += " fixed in " + strings.Join(m.Fixed, ", ")
				}
				parts = append(parts, p)
			}
			emit(c.finding(SubjectDevice, dv.DeviceID, dv.DeviceID, "",
				fmt.Sprintf("device %s runs %s: %s", dv.DeviceID, plural(len(dv.Matches), "vulnerable component"), strings.Join(parts, "; ")),
				"Update the firmware or component to a fixed version and record it on the device (muster devices update); muster vulns devices --device ID lists the advisories.",
				map[string]any{"advisories": dv.Advisories(), "matches": dv.Matches}))
		}
		return nil
	}
	return c
}

// vulnSource is the scan's scanner, made on first use.
type vulnSource struct{ s *Scanner }

func (sc *scan) scanner(ctx context.Context) (*Scanner, error) {
	err := sc.once("vulns", func() error {
		s, err := NewScanner(ctx, sc.st)
		sc.vulns = &vulnSource{s: s}
		return err
	})
	if err != nil {
		return nil, err
	}
	return sc.vulns.s, nil
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
