package nft

import (
	"math/bits"
	"net/netip"
)

// Interval is the closed address range [First, Last]; both ends are of the same family.
type Interval struct {
	First, Last netip.Addr
}

// PrefixInterval returns the addresses of p as an Interval. p must be valid.
func PrefixInterval(p netip.Prefix) Interval {
	if !p.IsValid() {
		return Interval{}
	}
	sp, is6 := prefixSpan(p)
	return Interval{First: numAddr(sp.first, is6), Last: numAddr(sp.last, is6)}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	if !p.Addr().IsValid() {
		return netip.Addr{}
	}
	sp, is6 := prefixSpan(p)
	return numAddr(sp.last, is6)
}

// Prefix returns the interval as a prefix when it is exactly one.
func (iv Interval) Prefix() (netip.Prefix, bool) {
	if !iv.First.IsValid() {
		return netip.Prefix{}, !iv.Last.IsValid() // the zero Interval is the zero Prefix
	}
	if iv.First.BitLen() != iv.Last.BitLen() {
		return netip.Prefix{}, false
	}
	sp := intervalSpan(iv)
	// A prefix of n host bits: first and last differ in exactly their low n bits, which are 0 in first.
	host := u128{sp.first.hi ^ sp.last.hi, sp.first.lo ^ sp.last.lo}
	n := 128 - bits.LeadingZeros64(host.hi)
	if host.hi == 0 {
		n = 64 - bits.LeadingZeros64(host.lo)
	}
	if host != hostMask(n) || sp.first.hi&host.hi != 0 || sp.first.lo&host.lo != 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(iv.First, iv.First.BitLen()-n), true
}

// Contains reports whether a is inside iv.
func (iv Interval) Contains(a netip.Addr) bool {
	return a.BitLen() == iv.First.BitLen() && iv.First.Compare(a) <= 0 && a.Compare(iv.Last) <= 0
}

// String is the nft notation: "10.0.0.0/8", "10.0.0.1" for a single address, "10.0.0.1-10.0.0.6" otherwise.
func (iv Interval) String() string {
	p, ok := iv.Prefix()
	switch {
	case ok && p.IsSingleIP():
		return p.Addr().String()
	case ok:
		return p.String()
	default:
		return iv.First.String() + "-" + iv.Last.String()
	}
}

// normalize sorts intervals and merges the ones that overlap or touch. The result never has two intervals the
// kernel would see as overlapping, and the same input set always gives the same slice: the IPv4 intervals,
// then the IPv6 ones. in is not modified.
func normalize(in []Interval) []Interval {
	var out []Interval
	for _, is6 := range []bool{false, true} {
		out = appendIntervals(out, normalizeSpans(sortSpans(familySpans(in, is6))), is6)
	}
	return out
}

// subtract returns the addresses of a that are not in b. Both must be normalized; so is the result.
func subtract(a, b []Interval) []Interval {
	var out []Interval
	for _, is6 := range []bool{false, true} {
		out = appendIntervals(out, subtractSpans(nil, familySpans(a, is6), familySpans(b, is6)), is6)
	}
	return out
}

// familySpans returns the intervals of family is6 in ivs as spans, in order.
func familySpans(ivs []Interval, is6 bool) []span {
	var out []span
	for _, iv := range ivs {
		if iv.First.Is6() == is6 {
			out = append(out, intervalSpan(iv))
		}
	}
	return out
}
