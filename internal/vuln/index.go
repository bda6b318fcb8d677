package vuln

import (
	"net/url"
	"slices"
	"strings"
)

// Software is a piece of software a device runs: an installed firmware
// version or a component of its CycloneDX BOM.
type Software struct {
	// Ecosystem is the OSV ecosystem; empty matches a package of that name
	// in any ecosystem (device firmware rarely has one).
	Ecosystem string `json:"ecosystem,omitempty"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// Source says where the component came from: "firmware" or "sbom".
	Source string `json:"source,omitempty"`
}

// Match is one advisory that affects one component.
type Match struct {
	AdvisoryID string   `json:"advisoryId"`
	Aliases    []string `json:"aliases,omitempty"`
	Summary    string   `json:"summary,omitempty"`
	Component  Software `json:"component"`
	// Fixed are the versions that fix it, from the advisory's ranges.
	Fixed []string `json:"fixed,omitempty"`
}

// Index finds the advisories of a package by name. It is read-only once
// built, so one Index may serve concurrent matching.
type Index struct {
	byName map[string][]entry
}

type entry struct {
	adv *Advisory
	af  *Affected
}

// NewIndex indexes advisories; withdrawn ones are left out.
func NewIndex(advs []*Advisory) *Index {
	ix := &Index{byName: map[string][]entry{}}
	for _, a := range advs {
		if a.Withdrawn != nil {
			continue
		}
		for i := range a.Affected {
			af := &a.Affected[i]
			name := af.Package.Name
			if name == "" {
				if eco, n, ok := FromPURL(af.Package.PURL); ok {
					name = n
					if af.Package.Ecosystem == "" {
						af.Package.Ecosystem = eco
					}
				}
			}
			k := nameKey(name)
			ix.byName[k] = append(ix.byName[k], entry{adv: a, af: af})
		}
	}
	return ix
}

// Len is the number of indexed package names.
func (ix *Index) Len() int { return len(ix.byName) }

// Match returns the advisories that affect c, one per advisory.
func (ix *Index) Match(c Software) []Match {
	if c.Version == "" {
		return nil
	}
	var out []Match
	for _, e := range ix.byName[nameKey(c.Name)] {
		if c.Ecosystem != "" && !strings.EqualFold(baseEcosystem(e.af.Package.Ecosystem), baseEcosystem(c.Ecosystem)) {
			continue
		}
		if !e.af.Affects(c.Version) {
			continue
		}
		if slices.ContainsFunc(out, func(m Match) bool { return m.AdvisoryID == e.adv.ID }) {
			continue
		}
		out = append(out, Match{AdvisoryID: e.adv.ID, Aliases: e.adv.Aliases, Summary: e.adv.Summary,
			Component: c, Fixed: e.af.FixedVersions()})
	}
	return out
}

func nameKey(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// purlEcosystems maps package URL types to OSV ecosystems.
var purlEcosystems = map[string]string{
	"golang": "Go", "npm": "npm", "pypi": "PyPI", "cargo": "crates.io", "maven": "Maven",
	"nuget": "NuGet", "gem": "RubyGems", "composer": "Packagist", "hex": "Hex", "pub": "Pub",
	"deb": "Debian", "apk": "Alpine", "rpm": "Red Hat", "swift": "SwiftURL",
}

// FromPURL reads the OSV ecosystem and package name of a package URL
// ("pkg:golang/github.com/x/y@v1.2.3" is Go, "github.com/x/y"). A generic
// or unknown type gives an empty ecosystem, which matches by name only.
func FromPURL(purl string) (ecosystem, name string, ok bool) {
	rest, found := strings.CutPrefix(purl, "pkg:")
	if !found {
		return "", "", false
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "@")
	typ, path, found := strings.Cut(rest, "/")
	if !found || path == "" {
		return "", "", false
	}
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	typ = strings.ToLower(typ)
	switch typ {
	case "maven":
		// OSV names Maven packages group:artifact.
		path = strings.Replace(path, "/", ":", 1)
	case "deb", "apk", "rpm":
		// The namespace is the distribution; OSV names the package only.
		if i := strings.LastIndexByte(path, '/'); i >= 0 {
			path = path[i+1:]
		}
	case "generic":
		if i := strings.LastIndexByte(path, '/'); i >= 0 {
			path = path[i+1:]
		}
	}
	return purlEcosystems[typ], path, true
}
