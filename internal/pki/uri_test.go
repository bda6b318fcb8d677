package pki

import (
	"net/url"
	"strings"
	"testing"
)

func TestBirthURIRoundTrip(t *testing.T) {
	tests := []struct{ factory, serial, want string }{
		{"f1", "SN-0001", "urn:muster:device:f1:SN-0001"},
		{"shen:zhen", "a/b", "urn:muster:device:shen%3Azhen:a%2Fb"},
		{"Fab 7", "100%+x", "urn:muster:device:Fab%207:100%25%2Bx"},
		{"münchen", "~._-", "urn:muster:device:m%C3%BCnchen:~._-"},
	}
	for _, tt := range tests {
		got := BirthURI(tt.factory, tt.serial)
		if got != tt.want {
			t.Errorf("BirthURI(%q, %q) = %q, want %q", tt.factory, tt.serial, got, tt.want)
		}
		if _, err := url.Parse(got); err != nil {
			t.Errorf("%q is not a valid URI: %v", got, err)
		}
		f, s, err := ParseBirthURI(got)
		if err != nil || f != tt.factory || s != tt.serial {
			t.Errorf("ParseBirthURI(%q) = %q, %q, %v", got, f, s, err)
		}
	}
}

func TestParseBirthURIRefuses(t *testing.T) {
	for _, uri := range []string{
		"urn:muster:device:f1",             // no serial
		"urn:muster:device::s1",            // empty factory
		"urn:muster:device:f1:",            // empty serial
		"urn:muster:device:f1:s1:extra",    // ':' must be escaped in a serial
		"urn:muster:device:f%3a1:s1",       // lowercase escape is not canonical
		"urn:muster:device:%66:s1",         // needless escape of 'f'
		"urn:muster:device:f1:s%zz",        // bad escape
		"urn:muster:device-id:abc",         // operational namespace
		"URN:muster:device:f1:s1",          // not canonical
		"https://example.com/device/f1/s1", // not a URN
	} {
		if f, s, err := ParseBirthURI(uri); err == nil {
			t.Errorf("ParseBirthURI(%q) = %q, %q; want error", uri, f, s)
		}
	}
}

func TestOperationalURI(t *testing.T) {
	for _, id := range []string{"0193f5e2-7c1a-7b3e-9c1d-2f4a5b6c7d8e", "dev:1/2"} {
		uri := OperationalURI(id)
		if !strings.HasPrefix(uri, "urn:muster:device-id:") {
			t.Errorf("OperationalURI(%q) = %q", id, uri)
		}
		got, err := ParseOperationalURI(uri)
		if err != nil || got != id {
			t.Errorf("ParseOperationalURI(%q) = %q, %v", uri, got, err)
		}
	}
	for _, uri := range []string{"urn:muster:device-id:", "urn:muster:device:f:s", "urn:muster:device-id:a%2fb"} {
		if got, err := ParseOperationalURI(uri); err == nil {
			t.Errorf("ParseOperationalURI(%q) = %q; want error", uri, got)
		}
	}
}
