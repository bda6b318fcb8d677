package vuln

import (
	"cmp"
	"strings"
)

// version is a version parsed for one ordering.
type version interface {
	compare(other version) int
}

// ordering parses versions of one range type and ecosystem.
type ordering func(v string) (version, error)

type semverVersion struct{ semver }

func (a semverVersion) compare(b version) int { return a.semver.compare(b.(semverVersion).semver) }

func semverOrder(v string) (version, error) {
	s, err := parseSemver(v)
	if err != nil {
		return nil, err
	}
	return semverVersion{s}, nil
}

// semverEcosystems are the OSV ecosystems whose versions are SemVer, so
// that their ECOSYSTEM ranges order exactly like SEMVER ones.
var semverEcosystems = map[string]bool{
	"go": true, "npm": true, "crates.io": true, "hex": true, "pub": true, "nuget": true, "swifturl": true,
}

// orderFor returns the ordering of a range type in an ecosystem.
// ECOSYSTEM ranges of ecosystems Muster does not know an exact order for
// (Debian, Alpine, PyPI, Maven and firmware ecosystems of vendors) use
// naturalOrder, which agrees with them on the common dotted numeric forms.
func orderFor(rangeType, ecosystem string) ordering {
	if rangeType == RangeSemver || semverEcosystems[strings.ToLower(baseEcosystem(ecosystem))] {
		return semverOrder
	}
	return naturalOrder
}

// baseEcosystem strips an ecosystem's release suffix ("Debian:12" is
// Debian).
func baseEcosystem(e string) string {
	b, _, _ := strings.Cut(e, ":")
	return b
}

// naturalVersion is a version split into alternating runs of digits and
// other characters: "2.10.1-r3" is 2 "." 10 "." 1 "-r" 3.
type naturalVersion []string

func naturalOrder(v string) (version, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	var parts naturalVersion
	for i := 0; i < len(s); {
		j := i
		digit := isDigit(s[i])
		for j < len(s) && isDigit(s[j]) == digit {
			j++
		}
		parts = append(parts, s[i:j])
		i = j
	}
	return parts, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// compare orders runs pairwise: digit runs numerically, others by bytes
// with "~" lowest (as Debian and Alpine sort pre-releases); a version that
// is a prefix of the other is lower unless what follows starts with "~".
func (a naturalVersion) compare(o version) int {
	b := o.(naturalVersion)
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if isDigit(x[0]) && isDigit(y[0]) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if c := cmp.Compare(len(x), len(y)); c != 0 {
				return c
			}
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
			continue
		}
		if c := compareTilde(x, y); c != 0 {
			return c
		}
	}
	switch {
	case len(a) > len(b):
		if strings.HasPrefix(a[len(b)], "~") {
			return -1
		}
		return 1
	case len(a) < len(b):
		if strings.HasPrefix(b[len(a)], "~") {
			return 1
		}
		return -1
	}
	return 0
}

// compareTilde compares non-digit runs with "~" sorting before everything.
func compareTilde(x, y string) int {
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] == y[i] {
			continue
		}
		switch {
		case x[i] == '~':
			return -1
		case y[i] == '~':
			return 1
		case x[i] < y[i]:
			return -1
		}
		return 1
	}
	return cmp.Compare(len(x), len(y))
}
