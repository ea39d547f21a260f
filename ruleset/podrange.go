package ruleset

import "net/netip"

// MasqueradedWithin returns the addresses of p that r masquerades as destinations (Masquerades), as sorted,
// merged intervals; nil when r keeps the pod source for every address of p. It answers `--node-name`'s
// question: traffic from another node's pods to this node's pod range p must keep its pod source, so every
// address of p must be in the non-masquerade set. An IPv6 p under a ruleset without IPv6, or with Sources and
// no source of p's family, is never masqueraded. p is masked first; an invalid p gives nil.
func (r Ruleset) MasqueradedWithin(p netip.Prefix) []Interval {
	if !p.IsValid() {
		return nil
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	set, src := r.NonMasq4, r.Src4
	if p.Addr().Is6() {
		if !r.IPv6 {
			return nil
		}
		set, src = r.NonMasq6, r.Src6
	}
	if r.Sources && len(src) == 0 {
		return nil
	}
	return subtract([]Interval{prefixInterval(p)}, set) // a compiled set is normalized
}

// MasqueradedPodCIDRs returns the prefixes of pods (a node's spec.podCIDRs) of which r masquerades at least
// one address as a destination, in the order given.
func (r Ruleset) MasqueradedPodCIDRs(pods []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pods {
		if len(r.MasqueradedWithin(p)) > 0 {
			out = append(out, p)
		}
	}
	return out
}
