package ruleset

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
)

// Set arithmetic on Intervals: sorting, merging and subtracting lists of one family. An Interval's ends are
// plain 128-bit numbers (an IPv4 address is a number below 2³²), so sorting and merging hundreds of thousands
// of them moves memory the garbage collector never scans, and comparing two ends is two integer compares.

// u128 is an address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// compare is -1, 0 or +1 as a is less than, equal to or greater than b.
func (a u128) compare(b u128) int {
	switch {
	case a == b:
		return 0
	case a.less(b):
		return -1
	}
	return 1
}

// next is a+1, wrapping at 2¹²⁸.
func (a u128) next() u128 {
	lo, carry := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + carry, lo}
}

// prev is a-1, wrapping at 0.
func (a u128) prev() u128 {
	lo, borrow := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - borrow, lo}
}

// digit is byte d of a, counting from the least significant (0) to the most (15).
func (a u128) digit(d int) byte {
	if d < 8 {
		return byte(a.lo >> (8 * d))
	}
	return byte(a.hi >> (8 * (d - 8)))
}

// hostMask has the low n bits set, 0 ≤ n ≤ 128.
func hostMask(n int) u128 {
	if n > 64 {
		return u128{^uint64(0) >> (128 - n), ^uint64(0)}
	}
	return u128{0, ^uint64(0) >> (64 - n)} // n = 0 shifts by 64, which gives 0
}

// addrNum is a as a number. a must be valid.
func addrNum(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// num4 and num6 are the IPv4 and the IPv6 address whose number is n.
func num4(n u128) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n.lo >> 24), byte(n.lo >> 16), byte(n.lo >> 8), byte(n.lo)})
}

func num6(n u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], n.hi)
	binary.BigEndian.PutUint64(b[8:], n.lo)
	return netip.AddrFrom16(b)
}

// prefixInterval is the addresses of p. p.Addr() must be valid; an invalid length counts as 0.
func prefixInterval(p netip.Prefix) (iv Interval) {
	iv.setPrefix(p)
	return iv
}

// setPrefix sets iv to the addresses of p. p.Addr() must be valid; an invalid length counts as 0. It writes
// iv in place, field by field: Compile calls it for every prefix of the config.
func (iv *Interval) setPrefix(p netip.Prefix) {
	n, bitLen := addrNum(p.Addr()), p.Addr().BitLen()
	host := hostMask(bitLen - max(p.Bits(), 0))
	iv.first = u128{n.hi &^ host.hi, n.lo &^ host.lo}
	iv.last = u128{n.hi | host.hi, n.lo | host.lo}
	iv.bitLen = uint8(bitLen)
}

// maxRuns is the most sorted runs sortIntervals merges; more are radix sorted.
const maxRuns = 16

// sortIntervals sorts s by first address and returns it, in s or in a new slice. Intervals with the same
// first address may end up in any order: normalizeInPlace does not mind.
//
// Configs are often written in order, or nearly: a sorted s costs one pass and no allocation, and one made of
// a few sorted runs (a prefix added out of order, the link-local ranges) is merged run by run. Anything else
// is radix sorted: a least-significant-digit radix sort by first address, a byte per pass, that leaves out
// the bytes in which every first address is the same (most of them: IPv4 addresses are 4 bytes of 16, and
// prefixes end in zeros).
func sortIntervals(s []Interval) []Interval {
	and, or := u128{^uint64(0), ^uint64(0)}, u128{}
	runs := make([]int, 1, maxRuns+2) // where each sorted run starts, while there are at most maxRuns
	for i, x := range s {
		and.hi, and.lo = and.hi&x.first.hi, and.lo&x.first.lo
		or.hi, or.lo = or.hi|x.first.hi, or.lo|x.first.lo
		if i > 0 && x.first.less(s[i-1].first) && len(runs) <= maxRuns {
			runs = append(runs, i)
		}
	}
	switch {
	case len(runs) == 1:
		return s
	case len(runs) <= maxRuns:
		return mergeRuns(s, append(runs, len(s)))
	}
	differ := u128{and.hi ^ or.hi, and.lo ^ or.lo} // the bits in which some first addresses differ
	src, dst := s, make([]Interval, len(s))
	for d := range 16 { // the least significant byte first
		if differ.digit(d) == 0 {
			continue
		}
		var pos [256]int
		for i := range src {
			pos[src[i].first.digit(d)]++
		}
		sum := 0
		for k, n := range pos {
			pos[k] = sum
			sum += n
		}
		for i := range src {
			k := src[i].first.digit(d)
			dst[pos[k]] = src[i]
			pos[k]++
		}
		src, dst = dst, src
	}
	return src
}

// mergeRuns sorts s, made of sorted runs that start at bounds[0] = 0, bounds[1], … and end at
// bounds[len(bounds)-1] = len(s), by merging pairs of neighbouring runs until one is left. It returns s or a
// new slice.
func mergeRuns(s []Interval, bounds []int) []Interval {
	src, dst := s, make([]Interval, len(s))
	for len(bounds) > 2 {
		merged := []int{0}
		for i := 0; i+1 < len(bounds); i += 2 {
			lo, mid, hi := bounds[i], bounds[i+1], bounds[min(i+2, len(bounds)-1)]
			mergeSorted(dst[lo:hi], src[lo:mid], src[mid:hi])
			merged = append(merged, hi)
		}
		bounds = merged
		src, dst = dst, src
	}
	return src
}

// mergeSorted merges a and b, each sorted by first address, into dst (len(a)+len(b)).
func mergeSorted(dst, a, b []Interval) {
	i, j := 0, 0
	for k := range dst {
		if j == len(b) || i < len(a) && !b[j].first.less(a[i].first) {
			dst[k] = a[i]
			i++
		} else {
			dst[k] = b[j]
			j++
		}
	}
}

// normalizeInPlace sorts s by first address and merges the intervals that overlap or touch, and returns the
// result: sorted, and no two overlapping or touching, in s or in a new slice.
//
// A config in order costs one pass: the intervals are merged as they come, and only when one starts before
// the one merged last does the rest go through sortIntervals, together with what is merged so far (merging
// again what is already merged changes nothing).
func normalizeInPlace(s []Interval) []Interval {
	out := s[:0]
	for i, x := range s {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			if x.first.less(prev.first) {
				return normalizeInPlace(sortIntervals(append(out, s[i:]...)))
			}
			if absorb(prev, &x) {
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// absorb merges x into prev when x, which starts no earlier than prev, starts inside prev or just after it,
// and reports whether it did.
func absorb(prev, x *Interval) bool {
	// When prev ends at the family's last address, every x starts inside it, so prev.last.next() cannot
	// wrap to a false match.
	if prev.last.less(x.first) && x.first != prev.last.next() {
		return false
	}
	if prev.last.less(x.last) {
		prev.last = x.last
	}
	return true
}

// insertInterval adds x to s, which is normalized, and returns the result, normalized: x is merged with the
// intervals it overlaps or touches, or put between its neighbours. It works in s's memory when s has room
// for one more; the link-local ranges come in this way, as they would be out of order at the end of
// nearly any config (10.0.0.0/8 comes before 169.254.0.0/16, 192.168.0.0/16 after).
func insertInterval(s []Interval, x Interval) []Interval {
	// s[:i] end before x and do not touch it; s[j:] start after x and do not touch it. When an end is the
	// family's last address, less is false for it, so next() cannot wrap to a false match.
	i := sort.Search(len(s), func(k int) bool {
		return !s[k].last.less(x.first) || s[k].last.next() == x.first
	})
	j := i + sort.Search(len(s)-i, func(k int) bool {
		return x.last.less(s[i+k].first) && x.last.next() != s[i+k].first
	})
	if i == j {
		return slices.Insert(s, i, x)
	}
	if s[i].first.less(x.first) {
		x.first = s[i].first
	}
	if x.last.less(s[j-1].last) {
		x.last = s[j-1].last
	}
	s[i] = x
	return slices.Delete(s, i+1, j)
}

// subtractSorted appends to dst the addresses of a that are not in b and returns it. a and b must be normalized;
// so is what is appended. dst must not share memory with a or b.
func subtractSorted(dst, a, b []Interval) []Interval {
	j := 0
	for _, cur := range a {
		alive := true
		for j < len(b) && b[j].last.less(cur.first) {
			j++
		}
		for k := j; alive && k < len(b) && !cur.last.less(b[k].first); k++ {
			cut := b[k]
			if cur.first.less(cut.first) { // cut.first > cur.first ≥ 0: prev() cannot wrap
				dst = append(dst, Interval{cur.first, cut.first.prev(), cur.bitLen})
			}
			if cut.last.less(cur.last) { // cut.last < cur.last: next() cannot wrap
				cur.first = cut.last.next()
			} else {
				alive = false
			}
		}
		if alive {
			dst = append(dst, cur)
		}
	}
	return dst
}

// DiffIntervals returns the intervals only in have (to delete) and only in want (to add). Both inputs are
// sorted by First and Last, as Compile and Conn.Read give them; one merge pass finds both. Equal intervals, nearly all of them in an edit, are
// skipped with a plain comparison before any ordering is needed.
func DiffIntervals(have, want []Interval) (del, add []Interval) {
	i, j := 0, 0
	for i < len(have) && j < len(want) {
		if have[i].equal(want[j]) {
			i++
			j++
			continue
		}
		switch c := have[i].compare(want[j]); {
		case c == 0:
			i++
			j++
		case c < 0:
			del = append(del, have[i])
			i++
		default:
			add = append(add, want[j])
			j++
		}
	}
	return append(del, have[i:]...), append(add, want[j:]...)
}
