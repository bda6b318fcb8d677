// Package intel holds threat-intelligence indicators (IP addresses, CIDR
// ranges and domain names) loaded from plain lists and STIX 2.1 bundles,
// and matches addresses against them. See docs/detection.md.
package intel

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/muster-iot/muster/internal/dnsname"
)

// Indicator types.
const (
	TypeIP     = "ip"
	TypeCIDR   = "cidr"
	TypeDomain = "domain"
)

// Indicator is one indicator of a feed.
type Indicator struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	// Name says what the indicator is, when the feed says (a STIX
	// indicator's name, or its id).
	Name string `json:"name,omitempty"`
}

// ParseValue classifies one indicator value: an IP address, a CIDR range
// (stored as its masked prefix) or a domain name (lower case, without a
// trailing dot).
func ParseValue(v string) (Indicator, error) {
	v = strings.TrimSpace(v)
	if ip, err := netip.ParseAddr(v); err == nil {
		return Indicator{Type: TypeIP, Value: ip.Unmap().String()}, nil
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if p.Bits() == p.Addr().BitLen() {
			return Indicator{Type: TypeIP, Value: p.Addr().String()}, nil
		}
		return Indicator{Type: TypeCIDR, Value: p.String()}, nil
	}
	// The rules devices' reported names follow too (internal/gateway).
	if name, err := dnsname.Normalize(v); err == nil {
		return Indicator{Type: TypeDomain, Value: name}, nil
	}
	return Indicator{}, fmt.Errorf("%q is not an IP address, CIDR range or domain name", v)
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 address spends on
// the mapping, so ::ffff:10.0.0.0/104 becomes 10.0.0.0/8.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// ErrEmpty means a feed held no indicator at all; importing it would wipe
// the feed, which is never what a failed download meant.
var ErrEmpty = errors.New("intel: the feed holds no indicators")
