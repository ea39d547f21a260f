package nft

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// Compile's arithmetic works on spans: intervals whose ends are plain 128-bit numbers rather than netip.Addrs.
// A span holds no pointer (a netip.Addr does), so sorting and merging hundreds of thousands of them moves
// memory the garbage collector never scans, and comparing two ends is two integer compares. All spans of one
// slice are of one family; an IPv4 address is a number below 2³².

// u128 is an address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

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

// addrNum is a as a number; is6 says which family it is. a must be valid.
func addrNum(a netip.Addr) (n u128, is6 bool) {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}, false
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, true
}

// numAddr is the address of family is6 whose number is n.
func numAddr(n u128, is6 bool) netip.Addr {
	if !is6 {
		return num4(n)
	}
	return num6(n)
}

func num4(n u128) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n.lo >> 24), byte(n.lo >> 16), byte(n.lo >> 8), byte(n.lo)})
}

func num6(n u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], n.hi)
	binary.BigEndian.PutUint64(b[8:], n.lo)
	return netip.AddrFrom16(b)
}

// span is the closed range [first, last] of one family, first ≤ last.
type span struct{ first, last u128 }

// prefixSpan is the addresses of p and its family. p.Addr() must be valid; an invalid length counts as 0.
func prefixSpan(p netip.Prefix) (s span, is6 bool) {
	first, is6 := addrNum(p.Addr())
	host := hostMask(p.Addr().BitLen() - max(p.Bits(), 0))
	first = u128{first.hi &^ host.hi, first.lo &^ host.lo}
	return span{first, u128{first.hi | host.hi, first.lo | host.lo}}, is6
}

func intervalSpan(iv Interval) span {
	first, _ := addrNum(iv.First)
	last, _ := addrNum(iv.Last)
	return span{first, last}
}

// appendIntervals appends the spans of family is6 to dst as Intervals.
func appendIntervals(dst []Interval, spans []span, is6 bool) []Interval {
	n := len(dst)
	dst = slices.Grow(dst, len(spans))[:n+len(spans)]
	out := dst[n:]
	if is6 {
		for i, s := range spans {
			out[i] = Interval{First: num6(s.first), Last: num6(s.last)}
		}
	} else {
		for i, s := range spans {
			out[i] = Interval{First: num4(s.first), Last: num4(s.last)}
		}
	}
	return dst
}

// spanIntervals returns the spans of family is6 as Intervals, nil when there are none.
func spanIntervals(spans []span, is6 bool) []Interval {
	if len(spans) == 0 {
		return nil
	}
	return appendIntervals(make([]Interval, 0, len(spans)), spans, is6)
}

// maxRuns is the most sorted runs sortSpans merges; more are radix sorted.
const maxRuns = 16

// sortSpans sorts s by first address and returns it, in s or in a new slice. Spans with the same first
// address may end up in any order: normalizeSpans does not mind.
//
// Configs are often written in order, or nearly: a sorted s costs one pass and no allocation, and one made of
// a few sorted runs (a prefix added out of order, the link-local ranges) is merged run by run. Anything else
// is radix sorted: a least-significant-digit radix sort by first address, a byte per pass, that leaves out
// the bytes in which every first address is the same (most of them: IPv4 addresses are 4 bytes of 16, and
// prefixes end in zeros).
func sortSpans(s []span) []span {
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
	src, dst := s, make([]span, len(s))
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
func mergeRuns(s []span, bounds []int) []span {
	src, dst := s, make([]span, len(s))
	for len(bounds) > 2 {
		merged := []int{0}
		for i := 0; i+1 < len(bounds); i += 2 {
			lo, mid, hi := bounds[i], bounds[i+1], bounds[min(i+2, len(bounds)-1)]
			mergeSpans(dst[lo:hi], src[lo:mid], src[mid:hi])
			merged = append(merged, hi)
		}
		bounds = merged
		src, dst = dst, src
	}
	return src
}

// mergeSpans merges a and b, each sorted by first address, into dst (len(a)+len(b)).
func mergeSpans(dst, a, b []span) {
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

// normalizeSpans merges the spans of s, sorted by first address, that overlap or touch, in place, and returns
// the merged prefix of s: sorted, and no two spans overlapping or touching.
func normalizeSpans(s []span) []span {
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// x starts at most one past prev: merge. When prev ends at the family's last address, every x
			// starts inside it, so prev.last.next() cannot wrap to a false match.
			if !prev.last.less(x.first) || x.first == prev.last.next() {
				if prev.last.less(x.last) {
					prev.last = x.last
				}
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// subtractSpans appends to dst the addresses of a that are not in b and returns it. a and b must be normalized;
// so is what is appended. dst must not share memory with a or b.
func subtractSpans(dst, a, b []span) []span {
	j := 0
	for _, cur := range a {
		alive := true
		for j < len(b) && b[j].last.less(cur.first) {
			j++
		}
		for k := j; alive && k < len(b) && !cur.last.less(b[k].first); k++ {
			cut := b[k]
			if cur.first.less(cut.first) { // cut.first > cur.first ≥ 0: prev() cannot wrap
				dst = append(dst, span{cur.first, cut.first.prev()})
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
