package intel

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestParseList(t *testing.T) {
	p, err := Parse([]byte("# bad hosts\n203.0.113.7\n198.51.100.0/24, evil.Example.\n  2001:db8::/32 # v6 range\n::ffff:192.0.2.9\n203.0.113.7\n10.1.2.3/32\n"), FormatAuto, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Indicator{{TypeIP, "203.0.113.7", ""}, {TypeCIDR, "198.51.100.0/24", ""}, {TypeDomain, "evil.example", ""},
		{TypeCIDR, "2001:db8::/32", ""}, {TypeIP, "192.0.2.9", ""}, {TypeIP, "10.1.2.3", ""}}
	if len(p.Indicators) != len(want) {
		t.Fatalf("indicators = %+v", p.Indicators)
	}
	for i := range want {
		if p.Indicators[i] != want[i] {
			t.Errorf("indicator %d = %+v, want %+v", i, p.Indicators[i], want[i])
		}
	}
	for _, bad := range []string{"203.0.113.7\nnot a host!\n", "300.1.1.1\n", "-bad-.com\n"} {
		if _, err := Parse([]byte(bad), FormatList, now); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("Parse(%q) = %v, want an error naming the line", bad, err)
		}
	}
	if _, err := Parse([]byte("# nothing\n\n"), FormatList, now); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty list = %v, want ErrEmpty", err)
	}
	if _, err := Parse([]byte("x"), "csv", now); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestParseSTIX(t *testing.T) {
	bundle := `{"type":"bundle","id":"bundle--5d0092c5","objects":[
	 {"type":"indicator","spec_version":"2.1","id":"indicator--1","name":"C2 pair","pattern_type":"stix",
	  "pattern":"[ipv4-addr:value = '203.0.113.66'] OR [ipv4-addr:value = '198.51.100.23']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--2","pattern_type":"stix",
	  "pattern":"[ipv4-addr:value ISSUBSET '192.0.2.0/24' OR ipv6-addr:value = '2001:db8::1']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--3","pattern_type":"stix",
	  "pattern":"[domain-name:value = 'c2.evil.example']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--4","pattern_type":"stix",
	  "pattern":"[ipv4-addr:value = '203.0.113.1' AND network-traffic:dst_port = 23]","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--5","pattern_type":"stix","revoked":true,
	  "pattern":"[ipv4-addr:value = '203.0.113.2']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--6","pattern_type":"stix","valid_until":"2026-02-01T00:00:00Z",
	  "pattern":"[ipv4-addr:value = '203.0.113.3']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--7","pattern_type":"snort","pattern":"alert tcp any any","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"indicator","spec_version":"2.1","id":"indicator--8","pattern_type":"stix",
	  "pattern":"[file:hashes.'SHA-256' = 'aabb']","valid_from":"2026-01-01T00:00:00Z"},
	 {"type":"malware","spec_version":"2.1","id":"malware--1","name":"mirai","is_family":true}
	]}`
	p, err := Parse([]byte(bundle), FormatAuto, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range p.Indicators {
		got[i.Value] = i.Type + "/" + i.Name
	}
	want := map[string]string{
		"203.0.113.66": "ip/C2 pair", "198.51.100.23": "ip/C2 pair", "192.0.2.0/24": "cidr/indicator--2",
		"2001:db8::1": "ip/indicator--2", "c2.evil.example": "domain/indicator--3",
	}
	if len(got) != len(want) {
		t.Fatalf("indicators = %v", got)
	}
	for v, w := range want {
		if got[v] != w {
			t.Errorf("%s = %q, want %q", v, got[v], w)
		}
	}
	if len(p.Skipped) != 5 {
		t.Errorf("skipped = %q, want the AND, revoked, expired, snort and file-hash indicators", p.Skipped)
	}
	for _, bad := range []string{`{"type":"bundle","objects":[]}`, `{"type":"identity"}`, `{"type":"bundle","objects":`} {
		if _, err := Parse([]byte(bad), FormatSTIX, now); err == nil {
			t.Errorf("Parse(%s) accepted", bad)
		}
	}
}

func TestMatcher(t *testing.T) {
	m := NewMatcher()
	if _, ok := m.MatchIP(netip.MustParseAddr("203.0.113.66")); ok {
		t.Fatal("an empty matcher matched")
	}
	m.Load([]Feed{
		{Name: "a", Indicators: []Indicator{{TypeIP, "203.0.113.66", "c2"}, {TypeCIDR, "198.51.100.0/24", ""}, {TypeCIDR, "198.51.0.0/16", ""}, {TypeDomain, "evil.example", ""}}},
		{Name: "b", Indicators: []Indicator{{TypeCIDR, "2001:db8::/32", ""}}},
	})
	for addr, want := range map[string]string{
		"203.0.113.66":        "a:203.0.113.66 (c2)",
		"::ffff:203.0.113.66": "a:203.0.113.66 (c2)",
		"198.51.100.200":      "a:198.51.100.0/24",
		"198.51.7.1":          "a:198.51.0.0/16",
		"2001:db8:1::5":       "b:2001:db8::/32",
		"203.0.113.67":        "",
		"10.0.0.1":            "",
	} {
		mt, ok := m.MatchIP(netip.MustParseAddr(addr))
		if got := mt.Feed + ":" + mt.Indicator; ok != (want != "") || (ok && got != want) {
			t.Errorf("MatchIP(%s) = %q, %v; want %q", addr, got, ok, want)
		}
	}
	for name, want := range map[string]bool{"evil.example": true, "C2.Evil.Example.": true, "notevil.example": false, "example": false} {
		if _, ok := m.MatchDomain(name); ok != want {
			t.Errorf("MatchDomain(%s) = %v", name, ok)
		}
	}
	// A load replaces everything at once.
	m.Load([]Feed{{Name: "a", Indicators: []Indicator{{TypeIP, "192.0.2.1", ""}}}})
	if _, ok := m.MatchIP(netip.MustParseAddr("203.0.113.66")); ok {
		t.Error("an indicator of the old set still matches")
	}
}
