package dnsname

import (
	"regexp"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	good := map[string]string{
		"example.com":                   "example.com",
		"C2.Example.COM.":               "c2.example.com",
		"a.b.c.d.example.org":           "a.b.c.d.example.org",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"1-2.example.net":               "1-2.example.net",
		strings.Repeat("a", 63) + ".io": strings.Repeat("a", 63) + ".io",
	}
	for in, want := range good {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                                       "empty",
		".":                                      "empty",
		"localhost":                              "two labels",
		"example..com":                           "empty label",
		".example.com":                           "empty label",
		"-a.example.com":                         "'-'",
		"a-.example.com":                         "'-'",
		"_dmarc.example.com":                     "letters, digits",
		"a b.example.com":                        "letters, digits",
		"198.51.100.7":                           "top-level",
		"example.c0m":                            "top-level",
		"example.c":                              "top-level",
		"bücher.example":                         "ASCII",
		"\u212aexample.com":                      "ASCII", // the Kelvin sign lowers to 'k'
		strings.Repeat("a", 64) + ".io":          "at most 63",
		strings.Repeat("abcdefghi.", 26) + "com": "at most 253",
	}
	for in, want := range bad {
		got, err := Normalize(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Normalize(%q) = %q, %v; want an error mentioning %q", in, got, err, want)
		}
	}
}

// legacy is the pattern internal/intel accepted domain indicators with
// before it used this package: Normalize must accept the same names, so no
// stored indicator stops parsing.
var legacy = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$`)

func FuzzNormalizeAgreesWithLegacyPattern(f *testing.F) {
	for _, s := range []string{"example.com", "a.b.", "x-y.z9.org", "-a.com", "a..b", "1.2.3.4", "ab", "A.Bc."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := Normalize(s)
		ascii := strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) < 0
		want := ascii && len(strings.TrimSuffix(s, ".")) <= MaxLen && legacy.MatchString(s)
		if (err == nil) != want {
			t.Fatalf("Normalize(%q): err %v, legacy pattern accepts: %v", s, err, want)
		}
	})
}
