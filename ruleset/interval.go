package ruleset

import (
	"math/bits"
	"net/netip"
)

// Interval is the closed address range [First, Last] of one family. It holds its ends as plain numbers, not
// netip.Addrs (which hold a pointer), so the hundreds of thousands of intervals of a large Ruleset are memory
// the garbage collector never scans, and comparing two is a few integer compares. The zero Interval is
// empty: First and Last are the zero netip.Addr.
type Interval struct {
	first, last u128
	bitLen      uint8 // 32 or 128; 0 in the zero Interval
}

// IntervalFrom returns the interval [first, last]. Both must be valid and of the same bit length, first ≤
// last; otherwise it returns the zero Interval.
func IntervalFrom(first, last netip.Addr) Interval {
	if !first.IsValid() || first.BitLen() != last.BitLen() || first.Compare(last) > 0 {
		return Interval{}
	}
	f := addrNum(first)
	l := addrNum(last)
	return Interval{first: f, last: l, bitLen: uint8(first.BitLen())}
}

// First is the lowest address in iv.
func (iv Interval) First() netip.Addr { return iv.addr(iv.first) }

// Last is the highest address in iv.
func (iv Interval) Last() netip.Addr { return iv.addr(iv.last) }

// Is6 reports whether iv holds IPv6 addresses.
func (iv Interval) Is6() bool { return iv.bitLen == 128 }

func (iv Interval) addr(n u128) netip.Addr {
	switch iv.bitLen {
	case 32:
		return num4(n)
	case 128:
		return num6(n)
	}
	return netip.Addr{}
}

// equal is iv == o, written out so that it inlines to integer compares (== calls a generated function).
func (iv Interval) equal(o Interval) bool {
	return iv.first == o.first && iv.last == o.last && iv.bitLen == o.bitLen
}

// compare orders intervals by First, then Last; IPv4 before IPv6.
func (iv Interval) compare(o Interval) int {
	switch {
	case iv.bitLen != o.bitLen:
		return int(iv.bitLen) - int(o.bitLen)
	case iv.first != o.first:
		return iv.first.compare(o.first)
	}
	return iv.last.compare(o.last)
}

// PrefixInterval returns the addresses of p as an Interval. p must be valid.
func PrefixInterval(p netip.Prefix) Interval {
	if !p.IsValid() {
		return Interval{}
	}
	return prefixInterval(p)
}

// Prefix returns the interval as a prefix when it is exactly one.
func (iv Interval) Prefix() (netip.Prefix, bool) {
	if iv.bitLen == 0 {
		return netip.Prefix{}, true // the zero Interval is the zero Prefix
	}
	// A prefix of n host bits: first and last differ in exactly their low n bits, which are 0 in first.
	host := u128{iv.first.hi ^ iv.last.hi, iv.first.lo ^ iv.last.lo}
	n := 128 - bits.LeadingZeros64(host.hi)
	if host.hi == 0 {
		n = 64 - bits.LeadingZeros64(host.lo)
	}
	if host != hostMask(n) || iv.first.hi&host.hi != 0 || iv.first.lo&host.lo != 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(iv.First(), int(iv.bitLen)-n), true
}

// Contains reports whether a is inside iv.
func (iv Interval) Contains(a netip.Addr) bool {
	if !a.IsValid() || a.BitLen() != int(iv.bitLen) {
		return false
	}
	n := addrNum(a)
	return !n.less(iv.first) && !iv.last.less(n)
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
		return iv.First().String() + "-" + iv.Last().String()
	}
}

// normalize sorts intervals and merges the ones that overlap or touch. The result never has two intervals the
// kernel would see as overlapping, and the same input set always gives the same slice: the IPv4 intervals,
// then the IPv6 ones. in is not modified.
func normalize(in []Interval) []Interval {
	return append(normalizeInPlace(ofFamily(in, false)), normalizeInPlace(ofFamily(in, true))...)
}

// subtract returns the addresses of a that are not in b. Both must be normalized; so is the result.
func subtract(a, b []Interval) []Interval {
	out := subtractSorted(nil, ofFamily(a, false), ofFamily(b, false))
	return subtractSorted(out, ofFamily(a, true), ofFamily(b, true))
}

// ofFamily returns a copy of the intervals of family is6 in ivs, in order.
func ofFamily(ivs []Interval, is6 bool) []Interval {
	var out []Interval
	for _, iv := range ivs {
		if iv.bitLen != 0 && iv.Is6() == is6 {
			out = append(out, iv)
		}
	}
	return out
}

// Key is one end of an interval as a number: the big-endian bytes of an address, an IPv4 key in the low 32
// bits of Lo.
type Key struct{ Hi, Lo uint64 }

// ElementKeys is how the kernel's interval sets hold iv: a start element with key start and, unless iv
// reaches the last address of its family (hasEnd false), an end element (NFT_SET_ELEM_INTERVAL_END) with key
// end, the address after iv. keyLen is 4 for IPv4, 16 for IPv6.
func (iv Interval) ElementKeys() (start, end Key, hasEnd bool, keyLen int) {
	start = Key{iv.first.hi, iv.first.lo}
	if iv.last != hostMask(int(iv.bitLen)) {
		n := iv.last.next()
		end, hasEnd = Key{n.hi, n.lo}, true
	}
	return start, end, hasEnd, int(iv.bitLen) / 8
}
