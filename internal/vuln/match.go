package vuln

import (
	"slices"
)

// Affects reports whether version of the package is affected: listed in
// versions, or inside one of the SEMVER or ECOSYSTEM ranges. A version
// that does not parse in a range's order is outside that range (it cannot
// be placed in it), but may still be listed.
func (af *Affected) Affects(version string) bool {
	if slices.Contains(af.Versions, version) {
		return true
	}
	for _, r := range af.Ranges {
		if r.Type == RangeGit {
			continue
		}
		if r.contains(version, orderFor(r.Type, af.Package.Ecosystem)) {
			return true
		}
	}
	return false
}

// contains evaluates the range as the OSV schema specifies: the version
// must be below a limit when there are limits; then the events, sorted by
// version with introduced "0" lowest, are walked in order: an introduced
// at or below the version turns "affected" on, a fixed at or below it turns
// it off, and a last_affected below it turns it off.
func (r Range) contains(v string, order ordering) bool {
	ver, err := order(v)
	if err != nil {
		return false
	}
	type ev struct {
		kind string
		at   version // nil means "0", below everything
	}
	var evs []ev
	var limits []version
	unlimited := false
	for _, e := range r.Events {
		kind, s, err := e.only()
		if err != nil {
			return false
		}
		if kind == "limit" {
			if s == "*" {
				unlimited = true
				continue
			}
			if lv, err := order(s); err == nil {
				limits = append(limits, lv)
			}
			continue
		}
		if kind == "introduced" && s == "0" {
			evs = append(evs, ev{kind: kind})
			continue
		}
		at, err := order(s)
		if err != nil {
			continue
		}
		evs = append(evs, ev{kind: kind, at: at})
	}
	if len(limits) > 0 && !unlimited && !slices.ContainsFunc(limits, func(l version) bool { return ver.compare(l) < 0 }) {
		return false
	}
	slices.SortStableFunc(evs, func(a, b ev) int {
		switch {
		case a.at == nil && b.at == nil:
			return 0
		case a.at == nil:
			return -1
		case b.at == nil:
			return 1
		}
		return a.at.compare(b.at)
	})
	affected := false
	for _, e := range evs {
		switch e.kind {
		case "introduced":
			if e.at == nil || ver.compare(e.at) >= 0 {
				affected = true
			}
		case "fixed":
			if ver.compare(e.at) >= 0 {
				affected = false
			}
		case "last_affected":
			if ver.compare(e.at) > 0 {
				affected = false
			}
		}
	}
	return affected
}

// FixedVersions lists the fixed events of the package's ranges, in the
// order the advisory gives them: the versions to upgrade to.
func (af *Affected) FixedVersions() []string {
	var out []string
	for _, r := range af.Ranges {
		for _, e := range r.Events {
			if e.Fixed != "" && !slices.Contains(out, e.Fixed) {
				out = append(out, e.Fixed)
			}
		}
	}
	return out
}
