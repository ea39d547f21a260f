package ruleset

import (
	"net/netip"

	"github.com/masqd/masqd/config"
)

// Reason names what decided a Decision.
type Reason int

const (
	// Unexplained means no config entry accounts for the compiled verdict. It never happens unless Compile and
	// Explain part ways, which is a bug.
	Unexplained Reason = iota
	// NoRange: masqueraded, as no non-masquerade range (nor link-local) contains the destination.
	NoRange
	// MasqueradeCIDR: masqueraded by a masqueradeCIDRs entry, Decision.Entry.
	MasqueradeCIDR
	// NonMasqueradeCIDR: the pod source is kept by a nonMasqueradeCIDRs entry, Decision.Entry.
	NonMasqueradeCIDR
	// LinkLocal: the destination is link-local (Decision.Entry is 169.254.0.0/16 or fe80::/10, with the zero
	// Source): the pod source is kept when masqLinkLocal (masqLinkLocalIPv6) is false, and the traffic is
	// masqueraded when it is true and no non-masquerade entry contains the destination.
	LinkLocal
	// NoIPv6Rule: the pod source is kept because the destination is IPv6 and IPv6 is not enabled, so masqd has
	// no IPv6 rule.
	NoIPv6Rule
	// ClusterCIDR: the pod source is kept by a clusterCIDRs entry (the key, or --cluster-cidr: Entry.Source
	// says which), Decision.Entry.
	ClusterCIDR
)

var reasonNames = [...]string{"unexplained", "no-range", "masqueradeCIDRs", "nonMasqueradeCIDRs", "link-local", "no-ipv6-rule", "clusterCIDRs"}

func (r Reason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return reasonNames[Unexplained]
	}
	return reasonNames[r]
}

// MarshalText makes JSON say the name, not the number.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Decision is what masqd does with traffic to one destination, and why.
type Decision struct {
	// Dst is the destination as looked up: an IPv4-mapped address is unmapped and a zone dropped.
	Dst netip.Addr
	// Masquerade is the verdict: the traffic leaves with the node's address. It is Compile(cfg,
	// opts).Masquerades(Dst), whatever the Reason says.
	Masquerade bool
	// SNAT is the address the traffic leaves with when masqueraded with snatTo or snatToInterface; the zero
	// Addr when it takes the outgoing interface's (masquerade) or is kept.
	SNAT   netip.Addr
	Reason Reason
	// Entry is the config entry that decided: set for MasqueradeCIDR, NonMasqueradeCIDR, ClusterCIDR (with their Source)
	// and LinkLocal (the link-local range, with the zero Source); zero otherwise.
	Entry config.CIDR
}

// Explain says whether masqd masquerades traffic to dst under cfg and opts, and which config entry decided
// it. The verdict is that of the compiled ruleset (Compile(cfg, opts).Masquerades), so Explain never tells
// anything the kernel rules would not do; the explanation only finds the entry that accounts for it:
//
//   - masqueraded: the most specific masqueradeCIDRs entry containing dst (it wins whatever else contains
//     dst); else link-local with masqLinkLocal (masqLinkLocalIPv6) true; else no non-masquerade range
//     contains it.
//   - kept: IPv6 without EnableIPv6 (there is no IPv6 rule); else link-local with masqLinkLocal
//     (masqLinkLocalIPv6) false; else the most specific nonMasqueradeCIDRs or clusterCIDRs entry containing
//     dst (of equals, the nonMasqueradeCIDRs one, then the first).
//
// Destinations local to the node are never masqueraded by the rule (fib daddr type local); the config does
// not say which they are, so Explain leaves them to the caller. Explain is pure and safe for concurrent use.
func Explain(cfg config.Config, opts Options, dst netip.Addr) Decision {
	dst = dst.Unmap().WithZone("")
	r := Compile(cfg, opts)
	d := Decision{Dst: dst, Masquerade: r.Masquerades(dst)}
	if d.Masquerade {
		d.SNAT = r.SNAT(dst)
	}
	ll, masqLL := linkLocal4, cfg.MasqLinkLocal
	if dst.Is6() {
		ll, masqLL = linkLocal6, cfg.MasqLinkLocalIPv6
	}
	if d.Masquerade {
		if c, ok := mostSpecific(cfg.MasqueradeCIDRs, dst); ok {
			d.Reason, d.Entry = MasqueradeCIDR, c
		} else if masqLL && ll.Contains(dst) {
			d.Reason, d.Entry = LinkLocal, config.CIDR{Prefix: ll}
		} else {
			d.Reason = NoRange
		}
		return d
	}
	if dst.Is6() && !cfg.EnableIPv6 {
		d.Reason = NoIPv6Rule
		return d
	}
	if !masqLL && ll.Contains(dst) {
		d.Reason, d.Entry = LinkLocal, config.CIDR{Prefix: ll}
	} else {
		c, ok := mostSpecific(cfg.NonMasqueradeCIDRs, dst)
		if cc, cok := mostSpecific(cfg.ClusterCIDRs, dst); cok && (!ok || cc.Prefix.Bits() > c.Prefix.Bits()) {
			d.Reason, d.Entry = ClusterCIDR, cc
		} else if ok {
			d.Reason, d.Entry = NonMasqueradeCIDR, c
		}
	}
	return d
}

// mostSpecific returns the longest prefix among cidrs that contains dst; the first of equals.
func mostSpecific(cidrs []config.CIDR, dst netip.Addr) (config.CIDR, bool) {
	best, found := config.CIDR{}, false
	for _, c := range cidrs {
		if c.Prefix.Contains(dst) && (!found || c.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = c, true
		}
	}
	return best, found
}

// Element returns the element of r's non-masquerade set of dst's family that holds dst, as the kernel holds it
// when r was read from the kernel. ok is false when no element holds dst, or dst is IPv6 and r has no IPv6
// set.
func (r Ruleset) Element(dst netip.Addr) (iv Interval, ok bool) {
	dst = dst.Unmap().WithZone("")
	set := r.NonMasq4
	if dst.Is6() {
		if !r.IPv6 {
			return Interval{}, false
		}
		set = r.NonMasq6
	}
	i, found := search(set, dst)
	if !found {
		return Interval{}, false
	}
	return set[i], true
}

// Difference returns the addresses held by the intervals of a and by none of b, as sorted, merged intervals.
// Neither list need be sorted or merged (a set read from the kernel may not be). With a the config's
// non-masquerade set and b the kernel's, they are the destinations the config keeps the pod source for and
// the kernel masquerades.
func Difference(a, b []Interval) []Interval {
	return subtract(normalize(a), normalize(b))
}
