package vuln

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// semver is a parsed Semantic Versioning 2.0 version. Build metadata is
// dropped: it does not take part in precedence.
type semver struct {
	major, minor, patch uint64
	pre                 []string // dot-separated pre-release identifiers
}

// parseSemver parses v. It is lenient in the ways device firmware versions
// need: a leading "v" is accepted and missing minor or patch numbers count
// as zero ("1.2" is 1.2.0).
func parseSemver(v string) (semver, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	var out semver
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if core == "" || len(parts) > 3 {
		return semver{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
	}
	nums := []*uint64{&out.major, &out.minor, &out.patch}
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return semver{}, fmt.Errorf("version %q: %q is not a number without leading zeros", v, p)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return semver{}, fmt.Errorf("version %q: %q is not a number", v, p)
		}
		*nums[i] = n
	}
	if hasPre {
		if pre == "" {
			return semver{}, fmt.Errorf("version %q: empty pre-release", v)
		}
		out.pre = strings.Split(pre, ".")
		for _, id := range out.pre {
			if id == "" {
				return semver{}, fmt.Errorf("version %q: empty pre-release identifier", v)
			}
		}
	}
	return out, nil
}

// compare orders a and b by SemVer 2.0 precedence: -1, 0 or 1.
func (a semver) compare(b semver) int {
	for _, d := range [][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	// A version without pre-release ranks above one with.
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		if c := comparePreID(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

// comparePreID compares pre-release identifiers: numeric ones numerically
// and below alphanumeric ones, which compare in ASCII order.
func comparePreID(a, b string) int {
	an, aErr := strconv.ParseUint(a, 10, 64)
	bn, bErr := strconv.ParseUint(b, 10, 64)
	switch {
	case aErr == nil && bErr == nil:
		return cmp.Compare(an, bn)
	case aErr == nil:
		return -1
	case bErr == nil:
		return 1
	}
	return strings.Compare(a, b)
}
