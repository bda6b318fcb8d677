// Package dnsname validates and normalises the domain names Muster
// compares: threat-intelligence indicators (internal/intel) and the names
// devices report (internal/gateway). Both sides must follow the same rules,
// or an indicator could name a domain no report can ever carry.
package dnsname

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest name in presentation form, without the trailing
// dot (RFC 1035's 255 octets on the wire).
const MaxLen = 253

// maxLabel is the longest label (RFC 1035).
const maxLabel = 63

// Normalize checks that s is a fully qualified host name in ASCII (LDH
// labels, internationalised names in their xn-- form) of at least two
// labels whose last is 2-63 letters, and returns it in lower case without
// a trailing dot. Single-label names (localhost), addresses and names with
// '_' are refused: no indicator can name them usefully. The error says what
// is wrong.
func Normalize(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		// Checked before lowering: strings.ToLower folds some non-ASCII
		// letters (the Kelvin sign) into ASCII ones.
		if s[i] >= 0x80 {
			return "", errors.New("not ASCII: send an internationalised name in its xn-- form")
		}
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if name == "" {
		return "", errors.New("empty name")
	}
	if len(name) > MaxLen {
		return "", fmt.Errorf("%d characters, at most %d allowed", len(name), MaxLen)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return "", errors.New("not a fully qualified name: it needs at least two labels (example.com)")
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 || strings.IndexFunc(tld, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return "", fmt.Errorf("top-level label %q: use 2-63 letters", tld)
	}
	return name, nil
}

// checkLabel checks one lower-case label: 1-63 letters, digits and '-',
// neither starting nor ending with '-'.
func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label (two dots in a row, or a leading dot)")
	case len(l) > maxLabel:
		return fmt.Errorf("label %.20q… is %d characters, at most %d allowed", l, len(l), maxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("label %q: use letters, digits and '-'", l)
		}
	}
	return nil
}
