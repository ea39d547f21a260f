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
	var ll4, ll6 netip.Prefix // the link-local ranges that are not masqueraded
	if !cfg.MasqLinkLocal {
		ll4 = linkLocal4
	}
	if !cfg.MasqLinkLocalIPv6 {
		ll6 = linkLocal6
	}
	non4, non6 := byFamily(cfg.NonMasqueradeCIDRs, ll4, ll6, cfg.EnableIPv6)
	masq4, masq6 := byFamily(cfg.MasqueradeCIDRs, netip.Prefix{}, netip.Prefix{}, cfg.EnableIPv6)
	r := Ruleset{
		NonMasq4:    compileFamily(non4, masq4),
		IPv6:        cfg.EnableIPv6,
		RandomFully: opts.RandomFully,
		ToPorts:     slices.Clone(opts.ToPorts),
	}
	if cfg.EnableIPv6 {
		r.NonMasq6 = compileFamily(non6, masq6)
	}
	return r
}

// byFamily returns the intervals of cidrs, and of ll4 and ll6 when they are valid, by family, in config
// order with ll4 and ll6 last (a config in order stays in order when it is above 169.254.0.0/16), in one
// new buffer read in one pass. IPv6 ones are left out unless with6.
func byFamily(cidrs []config.CIDR, ll4, ll6 netip.Prefix, with6 bool) (v4, v6 []Interval) {
	if len(cidrs) == 0 && !ll4.IsValid() && !ll6.IsValid() {
		return nil, nil
	}
	// IPv4 intervals fill the buffer from the front, IPv6 ones from the back; then the IPv6 ones are put back
	// in order.
	buf := make([]Interval, len(cidrs)+2)
	n4, n6 := 0, len(buf)
	for _, c := range cidrs {
		switch iv := prefixInterval(c.Prefix); {
		case !iv.Is6():
			buf[n4] = iv
			n4++
		case with6:
			n6--
			buf[n6] = iv
		}
	}
	if ll4.IsValid() {
		buf[n4] = prefixInterval(ll4)
		n4++
	}
	if ll6.IsValid() && with6 {
		n6--
		buf[n6] = prefixInterval(ll6)
	}
	v4, v6 = buf[:n4:n4], buf[n6:]
	slices.Reverse(v6)
	return v4, v6
}

// compileFamily returns the addresses of non that none of masq holds, normalized; nil when there are none.
// It sorts and merges non and masq in place, and may return a part of non.
func compileFamily(non, masq []Interval) []Interval {
	non = normalizeInPlace(non)
	if len(masq) > 0 {
		non = subtractSorted(make([]Interval, 0, len(non)+len(masq)), non, normalizeInPlace(masq))
	}
	if len(non) == 0 {
		return nil
	}
	return non[:len(non):len(non)]
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

// search finds the interval of set (sorted, disjoint, of a's family) that holds a.
func search(set []Interval, a netip.Addr) (int, bool) {
	n := addrNum(a)
	return slices.BinarySearchFunc(set, n, func(iv Interval, n u128) int {
		switch {
		case iv.last.less(n):
			return -1
		case n.less(iv.first):
			return 1
		}
		return 0
	})
}
