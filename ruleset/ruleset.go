package ruleset

import (
	"bytes"
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
	// Src4Name and Src6Name are the sets of sources masquerading is restricted to (masqueradeSourceCIDRs);
	// they exist only then. Their names sort after the non-masquerade sets', as nft lists them after.
	Src4Name = "sources4"
	Src6Name = "sources6"
	// EgressName is the set of interface names masquerading is restricted to (egressInterfaces); it
	// exists only then. nft lists it after the others, as it is created after them, and its name sorts
	// after theirs, as the Fake lists sets by name.
	EgressName = "uplinks"
)

// The link-local ranges: non-masquerade unless masqLinkLocal / masqLinkLocalIPv6 is set.
const (
	LinkLocal4 = "169.254.0.0/16"
	LinkLocal6 = "fe80::/10"
)

var (
	linkLocal4 = netip.MustParsePrefix(LinkLocal4)
	linkLocal6 = netip.MustParsePrefix(LinkLocal6)
)

// Options are the flags that shape the ruleset but are not part of the config file.
type Options struct {
	// RandomFully masquerades with "random,fully-random" port selection (--random-fully, default true).
	RandomFully bool
	// ToPorts restricts the source ports of masqueraded TCP, UDP and SCTP to these ranges (--to-ports),
	// each range taking new connections in proportion to its size; nil: any port.
	ToPorts []PortRange
	// Interface is snatToInterface's interface and its primary addresses, resolved by the caller (the agent
	// on the node): Compile stays pure. Used only when its Name is the config's SNATToInterface; a family
	// without an address keeps masquerade.
	Interface InterfaceAddrs
}

// InterfaceAddrs is an interface's primary address of each family; the zero Addr where it has none.
type InterfaceAddrs struct {
	Name   string
	V4, V6 netip.Addr
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
	IPv6 bool
	// Sources says whether masquerading is restricted to the sources in Src4 and Src6
	// (masqueradeSourceCIDRs): the sets Src4Name (and with IPv6 Src6Name) exist and every rule matches its
	// family's first. A family's empty set then masquerades nothing.
	Sources    bool
	Src4, Src6 []Interval
	// Egress are the interfaces masquerading is restricted to (egressInterfaces), sorted: the set
	// EgressName holds them and every rule matches oifname @egress. Nil: any interface.
	Egress []string
	// SNAT4 and SNAT6 are the addresses each family's traffic leaves with (snatTo, snatToInterface): the
	// rules snat to them instead of masquerading. The zero Addr: masquerade.
	SNAT4, SNAT6 netip.Addr
	RandomFully  bool
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
	non := cfg.NonMasqueradeCIDRs
	if len(cfg.ClusterCIDRs) > 0 { // the pod ranges are non-masquerade destinations too
		non = slices.Concat(non, cfg.ClusterCIDRs)
	}
	non4, non6 := byFamily(non, cfg.EnableIPv6)
	masq4, masq6 := byFamily(cfg.MasqueradeCIDRs, cfg.EnableIPv6)
	var ll4, ll6 netip.Prefix // the link-local ranges that are not masqueraded
	if !cfg.MasqLinkLocal {
		ll4 = linkLocal4
	}
	if !cfg.MasqLinkLocalIPv6 {
		ll6 = linkLocal6
	}
	r := Ruleset{
		NonMasq4:    compileFamily(non4, ll4, masq4),
		IPv6:        cfg.EnableIPv6,
		RandomFully: opts.RandomFully,
		ToPorts:     slices.Clone(opts.ToPorts),
	}
	if cfg.EnableIPv6 {
		r.NonMasq6 = compileFamily(non6, ll6, masq6)
	}
	for _, i := range cfg.EgressInterfaces {
		r.Egress = append(r.Egress, i.Name)
	}
	r.SNAT4, r.SNAT6 = cfg.SNATAddrs()
	if name := cfg.SNATToInterface.Name; name != "" && opts.Interface.Name == name {
		r.SNAT4, r.SNAT6 = opts.Interface.V4, opts.Interface.V6
	}
	if !cfg.EnableIPv6 {
		r.SNAT6 = netip.Addr{}
	}
	if len(cfg.MasqueradeSourceCIDRs) > 0 {
		src4, src6 := byFamily(cfg.MasqueradeSourceCIDRs, cfg.EnableIPv6)
		r.Sources = true
		r.Src4 = compileFamily(src4, netip.Prefix{}, family{sorted: true})
		if cfg.EnableIPv6 {
			r.Src6 = compileFamily(src6, netip.Prefix{}, family{sorted: true})
		}
	}
	return r
}

// family is one family's intervals from a prefix list: normalized when the list had them in order;
// otherwise merged up to the first one out of order, and in list order after it.
type family struct {
	ivs    []Interval
	sorted bool
}

// normalized returns f's intervals normalized, sorting and merging them in place if need be.
func (f family) normalized() []Interval {
	if f.sorted {
		return f.ivs
	}
	return normalizeInPlace(f.ivs)
}

// byFamily returns the intervals of cidrs by family, in one new buffer read in one pass; IPv6 ones are
// left out unless with6. Each family is merged as it comes: while its intervals come in order, one that
// overlaps or touches the one before it is merged into it. Each family's slice has room for one more
// interval (a link-local range).
func byFamily(cidrs []config.CIDR, with6 bool) (v4, v6 family) {
	if len(cidrs) == 0 {
		return family{sorted: true}, family{sorted: true}
	}
	// IPv4 intervals fill the buffer from the front, IPv6 ones from the back but for one free slot; then the
	// IPv6 ones are put back in order. buf[n4] and buf[n6-1] are where the next ones go.
	buf := make([]Interval, len(cidrs)+2)
	n4, n6 := 0, len(buf)-1
	v4.sorted, v6.sorted = true, true
	for i := range cidrs {
		p := &cidrs[i].Prefix
		switch {
		case p.Addr().Is4():
			buf[n4].setPrefix(*p)
			if n4 == 0 || !merge(&buf[n4-1], &buf[n4], &v4.sorted) {
				n4++
			}
		case with6:
			buf[n6-1].setPrefix(*p)
			if n6 == len(buf)-1 || !merge(&buf[n6], &buf[n6-1], &v6.sorted) {
				n6--
			}
		}
	}
	v4.ivs, v6.ivs = buf[:n4:n4+1], buf[n6:len(buf)-1]
	reverse(v6.ivs)
	return v4, v6
}

// reverse reverses s, swapping field by field: slices.Reverse's copies of whole 40-byte Intervals overlap
// in a way that stalls the CPU on every swap, which made it a third of byFamily's time.
func reverse(s []Interval) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		a, b := &s[i], &s[j]
		a.first, b.first = b.first, a.first
		a.last, b.last = b.last, a.last
		a.bitLen, b.bitLen = b.bitLen, a.bitLen
	}
}

// merge merges x into prev, the interval before it, when the intervals have come in order (*sorted) and x
// starts inside prev or just after it, and reports whether it did. When x starts before prev, *sorted
// becomes false.
func merge(prev, x *Interval, sorted *bool) bool {
	switch {
	case !*sorted:
		return false
	case x.first.less(prev.first):
		*sorted = false
		return false
	}
	return absorb(prev, x)
}

// compileFamily returns the addresses of non and of the link-local range ll (when valid) that none of masq
// holds, normalized; nil when there are none. It works in non's memory and may return a part of it.
func compileFamily(non family, ll netip.Prefix, masq family) []Interval {
	ivs := non.normalized()
	if ll.IsValid() {
		ivs = insertInterval(ivs, prefixInterval(ll))
	}
	if len(masq.ivs) > 0 {
		ivs = subtractSorted(make([]Interval, 0, len(ivs)+len(masq.ivs)), ivs, masq.normalized())
	}
	if len(ivs) == 0 {
		return nil
	}
	return ivs[:len(ivs):len(ivs)]
}

// SameRules reports whether the kernel's ruleset r does what want does: the same set elements, the same
// rules and nothing foreign. Counters are ignored.
func (r Ruleset) SameRules(want Ruleset) bool {
	return len(r.Foreign) == 0 && len(want.Foreign) == 0 &&
		r.IPv6 == want.IPv6 && r.RandomFully == want.RandomFully && slices.Equal(r.ToPorts, want.ToPorts) &&
		slices.Equal(r.NonMasq4, want.NonMasq4) && slices.Equal(r.NonMasq6, want.NonMasq6) &&
		r.Sources == want.Sources && slices.Equal(r.Src4, want.Src4) && slices.Equal(r.Src6, want.Src6) &&
		slices.Equal(r.Egress, want.Egress) && r.SNAT4 == want.SNAT4 && r.SNAT6 == want.SNAT6
}

// SNAT is the address traffic to dst's family leaves with; the zero Addr when it is masqueraded.
func (r Ruleset) SNAT(dst netip.Addr) netip.Addr {
	if dst.Unmap().Is6() {
		return r.SNAT6
	}
	return r.SNAT4
}

// ifnameInterval is an interface name as an element of an ifname set: its bytes, NUL-padded to 16, as one
// 128-bit key, the way the kernel holds it.
func ifnameInterval(name string) Interval {
	var b [16]byte
	copy(b[:], name)
	a := netip.AddrFrom16(b)
	return IntervalFrom(a, a)
}

// ifnameIntervals are names as elements of an ifname set, in the kernel's order (names sort as their keys).
func ifnameIntervals(names []string) []Interval {
	if len(names) == 0 {
		return nil
	}
	out := make([]Interval, len(names))
	for i, n := range names {
		out[i] = ifnameInterval(n)
	}
	slices.SortFunc(out, Interval.compare)
	return out
}

// IfnameOf reads an element of an ifname set back as a name; ok is false for anything but one whole name.
func IfnameOf(iv Interval) (string, bool) {
	if !iv.Is6() || iv.first != iv.last {
		return "", false
	}
	b := iv.First().As16()
	n := bytes.IndexByte(b[:], 0)
	if n < 0 {
		n = len(b)
	}
	name := string(b[:n])
	if name == "" || bytes.ContainsFunc(b[n:], func(r rune) bool { return r != 0 }) {
		return "", false
	}
	return name, true
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
// With Sources, that is for traffic from the sources in Src4 and Src6 (MasqueradesFrom); other sources are
// never masqueraded.
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

// MasqueradesFrom is Masquerades for traffic from src: with Sources, only a source in its family's set is
// masqueraded.
func (r Ruleset) MasqueradesFrom(src, dst netip.Addr) bool {
	src = src.Unmap()
	if r.Sources {
		set := r.Src4
		if src.Is6() {
			set = r.Src6
		}
		if _, found := search(set, src); !found || src.Is6() != dst.Unmap().Is6() {
			return false
		}
	}
	return r.Masquerades(dst)
}
