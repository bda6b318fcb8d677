package intel

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/muster-iot/muster/internal/detect"
)

// Feed is a named set of indicators, replaced whole by each import.
type Feed struct {
	Name       string
	Indicators []Indicator
}

// Matcher matches addresses and domains against every feed. Load swaps the
// whole index at once, so a match never sees half of an import.
type Matcher struct {
	idx atomic.Pointer[index]
}

type ref struct {
	feed string
	ind  Indicator
}

type index struct {
	ips     map[netip.Addr]ref
	cidrs   map[netip.Prefix]ref
	bits    []int // prefix lengths present in cidrs, longest first
	domains map[string]ref
}

// NewMatcher returns a matcher with no indicators.
func NewMatcher() *Matcher {
	m := &Matcher{}
	m.Load(nil)
	return m
}

// Load replaces every indicator with those of feeds.
func (m *Matcher) Load(feeds []Feed) {
	x := &index{ips: map[netip.Addr]ref{}, cidrs: map[netip.Prefix]ref{}, domains: map[string]ref{}}
	for _, f := range feeds {
		for _, ind := range f.Indicators {
			r := ref{f.Name, ind}
			switch ind.Type {
			case TypeIP:
				if ip, err := netip.ParseAddr(ind.Value); err == nil {
					x.ips[ip.Unmap()] = r
				}
			case TypeCIDR:
				if p, err := netip.ParsePrefix(ind.Value); err == nil {
					x.cidrs[p.Masked()] = r
					if !slices.Contains(x.bits, p.Bits()) {
						x.bits = append(x.bits, p.Bits())
					}
				}
			case TypeDomain:
				x.domains[ind.Value] = r
			}
		}
	}
	slices.SortFunc(x.bits, func(a, b int) int { return b - a })
	m.idx.Store(x)
}

// MatchIP finds the indicator ip matches: the address itself, or the
// longest CIDR range holding it.
func (m *Matcher) MatchIP(ip netip.Addr) (detect.IntelMatch, bool) {
	x := m.idx.Load()
	ip = ip.Unmap()
	if r, ok := x.ips[ip]; ok {
		return r.match(), true
	}
	for _, b := range x.bits {
		if b > ip.BitLen() {
			continue
		}
		p, err := ip.Prefix(b)
		if err != nil {
			continue
		}
		if r, ok := x.cidrs[p]; ok {
			return r.match(), true
		}
	}
	return detect.IntelMatch{}, false
}

// MatchDomain finds the indicator a domain name matches: the name itself
// or any parent domain listed (an indicator example.com matches
// c2.example.com).
func (m *Matcher) MatchDomain(name string) (detect.IntelMatch, bool) {
	x := m.idx.Load()
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for name != "" {
		if r, ok := x.domains[name]; ok {
			return r.match(), true
		}
		_, rest, ok := strings.Cut(name, ".")
		if !ok {
			break
		}
		name = rest
	}
	return detect.IntelMatch{}, false
}

func (r ref) match() detect.IntelMatch {
	v := r.ind.Value
	if r.ind.Name != "" {
		v += " (" + r.ind.Name + ")"
	}
	return detect.IntelMatch{Feed: r.feed, Indicator: v, Type: r.ind.Type}
}
