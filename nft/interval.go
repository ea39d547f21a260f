package nft

import (
	"cmp"
	"net/netip"
	"slices"
)

// Interval is the closed address range [First, Last]; both ends are of the same family.
type Interval struct {
	First, Last netip.Addr
}

// PrefixInterval returns the addresses of p as an Interval. p must be valid.
func PrefixInterval(p netip.Prefix) Interval {
	p = p.Masked()
	return Interval{First: p.Addr(), Last: lastAddr(p)}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			b[i] |= 0xff >> bits
			bits = 0
		default:
			b[i] = 0xff
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Prefix returns the interval as a prefix when it is exactly one.
func (iv Interval) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= iv.First.BitLen(); bits++ {
		p := netip.PrefixFrom(iv.First, bits)
		if p.Masked().Addr() != iv.First {
			continue
		}
		if lastAddr(p) == iv.Last {
			return p, true
		}
	}
	return netip.Prefix{}, false
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
// kernel would see as overlapping, and the same input set always gives the same slice. in is not modified.
func normalize(in []Interval) []Interval {
	s := slices.Clone(in)
	slices.SortFunc(s, func(a, b Interval) int {
		return cmp.Or(a.First.Compare(b.First), a.Last.Compare(b.Last))
	})
	out := s[:0]
	for _, iv := range s {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// Merge when iv starts at or before the address after prev.
			if next := prev.Last.Next(); !next.IsValid() || iv.First.Compare(next) <= 0 {
				if iv.Last.Compare(prev.Last) > 0 {
					prev.Last = iv.Last
				}
				continue
			}
		}
		out = append(out, iv)
	}
	return slices.Clip(out)
}

// subtract returns the addresses of a that are not in b. Both must be normalized; so is the result.
func subtract(a, b []Interval) []Interval {
	var out []Interval
	j := 0
	for _, iv := range a {
		cur := iv
		alive := true
		for j < len(b) && b[j].Last.Compare(cur.First) < 0 {
			j++
		}
		for k := j; alive && k < len(b) && b[k].First.Compare(cur.Last) <= 0; k++ {
			cut := b[k]
			if cut.First.Compare(cur.First) > 0 {
				out = append(out, Interval{First: cur.First, Last: cut.First.Prev()})
			}
			if next := cut.Last.Next(); next.IsValid() && next.Compare(cur.Last) <= 0 {
				cur.First = next
			} else {
				alive = false
			}
		}
		if alive {
			out = append(out, cur)
		}
	}
	return out
}
