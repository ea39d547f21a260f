package ruleset

import "net/netip"

// all6 is every IPv6 address: what the kernel leaves alone when it has no IPv6 rule.
var all6 = []Interval{PrefixInterval(netip.MustParsePrefix("::/0"))}

// Flipped returns, by family, the destinations whose verdict differs between have (the ruleset the kernel
// held) and want (the one now committed): the addresses in exactly one of the two non-masquerade sets, in
// other words those masqueraded before and not now, and those not masqueraded before and masqueraded now.
// A family without its rule (IPv6 off) masquerades nothing, so turning IPv6 on or off flips every IPv6
// address outside the non-masquerade set. The result is normalized; nil when nothing flipped. have's sets
// may be as the kernel holds them (unsorted, overlapping); neither input is modified.
//
// Only destinations count: a change of masqueradeSourceCIDRs (Sources, Src4, Src6), of egressInterfaces, of
// the snat address (snatTo, snatToInterface), of --random-fully or --to-ports flips no destination, and a
// flow's existing translation stays until the flow ends.
func Flipped(have, want Ruleset) (v4, v6 []Interval) {
	v4 = symmetricDifference(have.NonMasq4, want.NonMasq4)
	if !have.IPv6 && !want.IPv6 {
		return v4, nil
	}
	h6, w6 := have.NonMasq6, want.NonMasq6
	if !have.IPv6 {
		h6 = all6
	}
	if !want.IPv6 {
		w6 = all6
	}
	return v4, symmetricDifference(h6, w6)
}

// symmetricDifference returns the addresses in exactly one of a and b (one family each), normalized; nil
// when a and b hold the same addresses.
func symmetricDifference(a, b []Interval) []Interval {
	a, b = normalize(a), normalize(b) // copies: the inputs stay as they are
	out := normalizeInPlace(append(subtractSorted(nil, a, b), subtractSorted(nil, b, a)...))
	if len(out) == 0 {
		return nil
	}
	return out
}

// InSet reports whether a is in set, a normalized set of one family (as Flipped gives them).
func InSet(set []Interval, a netip.Addr) bool {
	a = a.Unmap()
	if len(set) == 0 || set[0].Is6() != a.Is6() {
		return false
	}
	_, found := search(set, a)
	return found
}
