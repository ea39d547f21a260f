package nft

import (
	"net/netip"
	"slices"

	"github.com/masqd/masqd/config"
)

// Names of the objects masqd owns. Nothing outside table inet masqd is ever touched.
const (
	TableName = "masqd"
	ChainName = "postrouting"
	Set4Name  = "nonmasq4"
	Set6Name  = "nonmasq6"
)

// Link-local ranges: non-masquerade unless masqLinkLocal / masqLinkLocalIPv6 is set.
var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// Options are the flags that shape the ruleset but are not part of the config file.
type Options struct {
	// RandomFully masquerades with "random,fully-random" port selection (--random-fully, default true).
	RandomFully bool
	// ToPorts restricts the source ports of masqueraded TCP, UDP and SCTP to these ranges (--to-ports),
	// each range taking new connections in proportion to its size; nil: any port.
	ToPorts []PortRange
}

// Counter is a rule's packet and byte count.
type Counter struct {
	Packets, Bytes uint64
}

// Ruleset is masqd's table inet masqd as a value: one interval set of non-masquerade destinations and one
// postrouting rule per family (with --to-ports, the port rules of ToPortsRules in front of it). A compiled
// Ruleset has normalized sets and zero counters; one read from the kernel has the elements as the kernel
// holds them, the live counters, and Foreign listing anything in the table that masqd would not have
// written.
type Ruleset struct {
	NonMasq4 []Interval
	NonMasq6 []Interval
	// IPv6 says whether the IPv6 set and rules exist (--enable-ipv6).
	IPv6        bool
	RandomFully bool
	// ToPorts are --to-ports' ranges; nil when masquerading may use any port.
	ToPorts []PortRange
	// Counter4 and Counter6 are the catch-all rules' counts (every protocol the port rules leave).
	Counter4 Counter
	Counter6 Counter
	// PortCounters4 and PortCounters6 are the port rules' counts, in chain order; nil when compiled.
	PortCounters4 []Counter
	PortCounters6 []Counter
	// Foreign describes objects in the table that are not masqd's own; always empty when compiled.
	Foreign []string
}

// Compile computes the desired ruleset. It is pure: the same config and options always give an equal
// Ruleset, whatever the order of prefixes in the config.
func Compile(cfg config.Config, opts Options) Ruleset {
	// One buffer holds the spans of both lists of both families, each in its own segment.
	var nNon, nMasq [2]int // index 0: IPv4, 1: IPv6
	if !cfg.MasqLinkLocal {
		nNon[0]++
	}
	if !cfg.MasqLinkLocalIPv6 {
		nNon[1]++
	}
	for _, c := range cfg.NonMasqueradeCIDRs {
		nNon[family(c.Prefix)]++
	}
	for _, c := range cfg.MasqueradeCIDRs {
		nMasq[family(c.Prefix)]++
	}
	buf := make([]span, nNon[0]+nNon[1]+nMasq[0]+nMasq[1])
	var non, masq [2][]span
	for i := range 2 {
		non[i], buf = buf[:0:nNon[i]], buf[nNon[i]:]
		masq[i], buf = buf[:0:nMasq[i]], buf[nMasq[i]:]
	}

	add := func(lists *[2][]span, p netip.Prefix) {
		sp, _ := prefixSpan(p)
		i := family(p)
		lists[i] = append(lists[i], sp)
	}
	for _, c := range cfg.NonMasqueradeCIDRs {
		add(&non, c.Prefix)
	}
	if !cfg.MasqLinkLocal { // last: a config in order stays in order when it is above 169.254.0.0/16
		add(&non, linkLocal4)
	}
	if !cfg.MasqLinkLocalIPv6 {
		add(&non, linkLocal6)
	}
	for _, c := range cfg.MasqueradeCIDRs {
		add(&masq, c.Prefix)
	}
	r := Ruleset{
		NonMasq4:    compileFamily(non[0], masq[0], false),
		IPv6:        cfg.EnableIPv6,
		RandomFully: opts.RandomFully,
		ToPorts:     slices.Clone(opts.ToPorts),
	}
	if cfg.EnableIPv6 {
		r.NonMasq6 = compileFamily(non[1], masq[1], true)
	}
	return r
}

// family is the index of p's family in Compile's lists: 0 for IPv4, 1 for IPv6.
func family(p netip.Prefix) int {
	if p.Addr().Is6() {
		return 1
	}
	return 0
}

// compileFamily returns the addresses of the spans non that none of masq holds, as normalized Intervals of
// family is6. It sorts and merges non and masq in place.
func compileFamily(non, masq []span, is6 bool) []Interval {
	non = normalizeSpans(sortSpans(non))
	if len(masq) == 0 {
		return spanIntervals(non, is6)
	}
	masq = normalizeSpans(sortSpans(masq))
	return spanIntervals(subtractSpans(make([]span, 0, len(non)+len(masq)), non, masq), is6)
}

// SameRules reports whether the kernel's ruleset r does what want does: the same set elements, the same
// rules and nothing foreign. Counters are ignored.
func (r Ruleset) SameRules(want Ruleset) bool {
	return len(r.Foreign) == 0 && len(want.Foreign) == 0 &&
		r.IPv6 == want.IPv6 && r.RandomFully == want.RandomFully && slices.Equal(r.ToPorts, want.ToPorts) &&
		slices.Equal(r.NonMasq4, want.NonMasq4) && slices.Equal(r.NonMasq6, want.NonMasq6)
}

// Masqueraded returns what each family's rules masqueraded, all of them together.
func (r Ruleset) Masqueraded() (v4, v6 Counter) {
	sum := func(c Counter, ports []Counter) Counter {
		for _, p := range ports {
			c.Packets += p.Packets
			c.Bytes += p.Bytes
		}
		return c
	}
	return sum(r.Counter4, r.PortCounters4), sum(r.Counter6, r.PortCounters6)
}

// Masquerades reports whether traffic to dst leaves with the node's address under r, leaving aside
// destinations local to the node (never masqueraded) and IPv6 without an IPv6 rule (never masqueraded).
func (r Ruleset) Masquerades(dst netip.Addr) bool {
	dst = dst.Unmap()
	set := r.NonMasq4
	if dst.Is6() {
		if !r.IPv6 {
			return false
		}
		set = r.NonMasq6
	}
	_, found := search(set, dst)
	return !found
}

// search finds the interval of set (sorted, disjoint) that holds a.
func search(set []Interval, a netip.Addr) (int, bool) {
	return slices.BinarySearchFunc(set, a, func(iv Interval, a netip.Addr) int {
		switch {
		case iv.Last.Compare(a) < 0:
			return -1
		case iv.First.Compare(a) > 0:
			return 1
		}
		return 0
	})
}
