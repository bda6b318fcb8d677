package pki

import (
	"fmt"
	"net/url"
	"strings"
)

// Device identities appear in certificates as URNs in the subject
// alternative name. Birth and operational identities use different
// namespaces so that one can never be mistaken for the other, even by code
// that only looks at the SAN.
const (
	birthURIPrefix       = "urn:muster:device:"
	operationalURIPrefix = "urn:muster:device-id:"
)

// BirthURI returns the identity URN of a device's birth certificate,
// urn:muster:device:<factory>:<serial>. Both parts are percent-encoded
// except for RFC 3986 unreserved characters, so a ':' inside a serial
// cannot shift the boundary between factory and serial.
func BirthURI(factory, serial string) string {
	return birthURIPrefix + escapeURNPart(factory) + ":" + escapeURNPart(serial)
}

// ParseBirthURI is the inverse of BirthURI. It accepts only the canonical
// encoding BirthURI produces, so each identity has exactly one URN.
func ParseBirthURI(uri string) (factory, serial string, err error) {
	rest, ok := strings.CutPrefix(uri, birthURIPrefix)
	if !ok {
		return "", "", fmt.Errorf("pki: %q is not a birth identity URN (want %s<factory>:<serial>)", uri, birthURIPrefix)
	}
	f, s, ok := strings.Cut(rest, ":")
	if !ok {
		return "", "", fmt.Errorf("pki: birth identity URN %q has no serial", uri)
	}
	if factory, err = unescapeURNPart(f); err != nil {
		return "", "", fmt.Errorf("pki: birth identity URN %q: factory: %w", uri, err)
	}
	if serial, err = unescapeURNPart(s); err != nil {
		return "", "", fmt.Errorf("pki: birth identity URN %q: serial: %w", uri, err)
	}
	return factory, serial, nil
}

// OperationalURI returns the identity URN of an operational certificate,
// urn:muster:device-id:<id>.
func OperationalURI(deviceID string) string {
	return operationalURIPrefix + escapeURNPart(deviceID)
}

// ParseOperationalURI is the inverse of OperationalURI.
func ParseOperationalURI(uri string) (deviceID string, err error) {
	rest, ok := strings.CutPrefix(uri, operationalURIPrefix)
	if !ok {
		return "", fmt.Errorf("pki: %q is not an operational identity URN (want %s<id>)", uri, operationalURIPrefix)
	}
	if deviceID, err = unescapeURNPart(rest); err != nil {
		return "", fmt.Errorf("pki: operational identity URN %q: %w", uri, err)
	}
	return deviceID, nil
}

// escapeURNPart percent-encodes every byte outside the RFC 3986
// unreserved set. url.PathEscape is not enough: it leaves ':' alone.
func escapeURNPart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// unescapeURNPart decodes a part and checks it was canonically encoded.
func unescapeURNPart(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty value")
	}
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", err
	}
	if escapeURNPart(v) != s {
		return "", fmt.Errorf("%q is not canonically percent-encoded", s)
	}
	return v, nil
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
