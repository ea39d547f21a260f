package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parse reads one configuration file held in data; file names it in Sources, errors and warnings ("" when it
// has no name). The meaning is upstream ip-masq-agent's, decided by upstream's own decoder: YAML 1.1 or JSON,
// keys matched without regard to case (the last of several spellings winning), a key left out or null keeping
// its value from Default(opts), and an empty file (or one holding only comments, or null) meaning
// Default(opts). Config.Files is []string{file} when file is not "".
//
// Where upstream accepts a value that misbehaves there, Parse accepts it too, with a Warning saying what it
// does instead: an empty list item is ignored, a resyncInterval of zero or less is the default. Unknown keys,
// flags written as keys and unusual spellings (yes for true, a key in another case, a key written twice)
// are Warnings as well. Parse refuses, where upstream would run on something else than what the file meant:
// a whole Kubernetes manifest instead of its config, and IPv4-mapped IPv6 prefixes.
//
// A failure is returned as an *Error, saying where it is and how to fix it; the Config and warnings are then
// zero. Parse does not bound the size of data: Load does, for files.
func Parse(file string, data []byte, opts Options) (Config, []Warning, error) {
	return parse(file, string(data), opts, true)
}

// parse is Parse; fast false makes it read every file with upstream's decoder, for the tests that hold the
// fast reader to it.
func parse(file string, data string, opts Options, fast bool) (Config, []Warning, error) {
	d := &decoder{file: file}
	b := &builder{decoder: d, cfg: Default(opts), opts: opts}
	var doc document
	ok := false
	if fast {
		doc, ok = readFast(data)
	}
	if !ok {
		defaults := make([]string, len(b.cfg.NonMasqueradeCIDRs))
		for i, c := range b.cfg.NonMasqueradeCIDRs {
			defaults[i] = c.Prefix.String()
		}
		var err error
		if doc, err = d.decode([]byte(data), defaults); err != nil {
			return Config{}, nil, err
		}
	}
	if file != "" {
		b.cfg.Files = []string{file}
	}
	if err := b.build(doc); err != nil {
		return Config{}, nil, err
	}
	return b.cfg, b.warnings, nil
}

// builder validates a document into a Config, on top of the defaults.
type builder struct {
	*decoder
	cfg  Config
	opts Options
}

// build sets every key the document sets. enableIPv6 is read first, as the prefixes depend on it; the other
// keys are checked in file order, so that the error reported is the first one in the file.
func (b *builder) build(doc document) error {
	if doc.topLevel != nil {
		return b.manifest(doc)
	}
	if f := doc.enableIPv6; f.set {
		switch {
		case f.v:
			b.cfg.EnableIPv6 = true
		case b.opts.EnableIPv6:
			b.warn(f.line, f.name, "enableIPv6: false does not turn off --enable-ipv6; IPv6 stays enabled")
		}
	}
	// Too many CIDRs is found before any is parsed, as upstream checks it first: a list of a million
	// needs no memory for a million prefixes to be refused.
	if err := b.checkLimit(doc); err != nil {
		return err
	}
	// Keys in file order, so that the error reported is the first one in the file; a key whose line is
	// unknown (0) comes first. clusterCIDRs adds to --cluster-cidr's prefixes, which come after it.
	var listedCluster []CIDR
	steps := []struct {
		line int
		set  func() error
	}{
		{doc.nonMasq.line, func() error { return b.cidrs(&b.cfg.NonMasqueradeCIDRs, doc.nonMasq) }},
		{doc.masq.line, func() error { return b.cidrs(&b.cfg.MasqueradeCIDRs, doc.masq) }},
		{doc.cluster.line, func() error { return b.cidrs(&listedCluster, doc.cluster) }},
		{doc.masqSrc.line, func() error { return b.cidrs(&b.cfg.MasqueradeSourceCIDRs, doc.masqSrc) }},
		{doc.egress.line, func() error { return b.interfaces(doc.egress) }},
		{doc.snatTo.line, func() error { return b.snatTo(doc.snatTo) }},
		{doc.snatToInterface.line, func() error { return b.snatToInterface(doc.snatToInterface) }},
		{doc.cidrLimit.line, func() error { set(&b.cfg.CIDRLimit, doc.cidrLimit); return nil }},
		{doc.masqLinkLocal.line, func() error { set(&b.cfg.MasqLinkLocal, doc.masqLinkLocal); return nil }},
		{doc.masqLinkLocalIPv6.line, func() error { set(&b.cfg.MasqLinkLocalIPv6, doc.masqLinkLocalIPv6); return nil }},
		{doc.resyncInterval.line, func() error { return b.resync(doc.resyncInterval) }},
		{doc.flushConntrack.line, func() error { b.flushConntrack(doc.flushConntrack); return nil }},
	}
	slices.SortStableFunc(steps, func(a, b struct {
		line int
		set  func() error
	}) int {
		return a.line - b.line
	})
	for _, s := range steps {
		if err := s.set(); err != nil {
			return err
		}
	}

	b.cfg.ClusterCIDRs = withFlagCIDRs(listedCluster, b.opts.ClusterCIDRs, b.cfg.EnableIPv6)
	b.sourceFamilies(doc.masqSrc)
	if len(b.cfg.SNATTo) > 0 && b.cfg.SNATToInterface.Name != "" {
		f := doc.snatToInterface
		return b.errAt(f.line, f.name, f.v, fmt.Sprintf("set together with %s (line %d): masqueraded traffic can leave with one address only", doc.snatTo.name, doc.snatTo.line),
			fmt.Sprintf("keep one of the two: %s for a fixed address, %s to follow the interface's address", doc.snatTo.name, f.name))
	}

	if f := doc.cidrLimit; f.set && f.v < 0 { // upstream refuses it too: no list is shorter
		return b.errAt(f.line, f.name, strconv.Itoa(f.v), "must not be negative", fmt.Sprintf("write a whole number, e.g. %s: 64", f.name))
	}
	return nil
}

// checkLimit refuses more nonMasqueradeCIDRs than cidrLimit allows (the file's or the default), counting
// every item as upstream does, empty ones included. A negative limit is refused later, as a bad value.
func (b *builder) checkLimit(doc document) error {
	limit := b.cfg.CIDRLimit
	if doc.cidrLimit.set {
		limit = doc.cidrLimit.v
	}
	n := doc.nonMasq.count(len(b.cfg.NonMasqueradeCIDRs))
	if limit < 0 || n <= limit {
		return nil
	}
	// Blame the list, or the limit when the list is the default one.
	w := doc.nonMasq.where
	if !doc.nonMasq.set {
		w = doc.cidrLimit.where
	}
	if w.name == "" {
		w.name = keyNonMasqueradeCIDRs.String()
	}
	return b.errAt(w.line, w.name, "", fmt.Sprintf("%d CIDRs is more than cidrLimit %d", n, limit),
		fmt.Sprintf("raise the limit (cidrLimit: %d) or merge ranges into fewer, larger prefixes", n))
}

// count is how many entries upstream counts against cidrLimit: every item, empty ones included.
func (l list) count(valid int) int {
	if !l.set {
		return valid
	}
	return len(l.items)
}

// set stores a scalar's value in dst when the file sets it.
func set[T any](dst *T, f scalar[T]) {
	if f.set {
		*dst = f.v
	}
}

// resync sets resyncInterval. Zero or less makes upstream re-sync without pause; masqd keeps its default.
func (b *builder) resync(f scalar[string]) error {
	if !f.set {
		return nil
	}
	fix := fmt.Sprintf("write a duration with a unit, e.g. %s: 60s", f.name)
	if f.v == "" {
		return b.errAt(f.line, f.name, "", "must be a duration, not empty", fix+", or remove the line to keep the default")
	}
	d, err := time.ParseDuration(f.v)
	if err != nil {
		if _, numErr := strconv.ParseFloat(f.v, 64); numErr == nil {
			fix = fmt.Sprintf("write a duration with a unit, e.g. %s: %ss", f.name, f.v)
		}
		e := b.errAt(f.line, f.name, f.v, "not a valid duration", fix)
		e.Err = err
		return e
	}
	if d <= 0 {
		b.warn(f.line, f.name, fmt.Sprintf("%s is not more than zero (ip-masq-agent would re-sync without pause); using the default %v: write a positive duration such as 60s",
			f.v, DefaultResyncInterval))
		return nil
	}
	b.cfg.ResyncInterval = d
	return nil
}

// cidrs validates a list. An empty item is ignored with a warning: upstream keeps whatever its default list
// held at that position, which is never what was meant.
func (b *builder) cidrs(dst *[]CIDR, l list) error {
	if !l.set {
		return nil
	}
	*dst = nil
	if len(l.items) == 0 {
		return nil
	}
	out := make([]CIDR, 0, len(l.items))
	for i, it := range l.items {
		if it.null {
			name := fmt.Sprintf("%s[%d]", l.name, i)
			if it.text == "" { // masqueradeCIDRs, or past the end of the default list
				if dst == &b.cfg.NonMasqueradeCIDRs {
					return b.errAt(it.line, name, "", "empty list item (ip-masq-agent reads it as an empty CIDR and refuses it too)",
						`remove the empty "-" item or write a CIDR such as 10.0.0.0/8`)
				}
				b.warn(it.line, name, `empty list item, ignored; remove the "-" line or write a CIDR`)
				continue
			}
			b.warn(it.line, name, fmt.Sprintf(`empty list item, read as %s, the default list's entry at this position (as by ip-masq-agent); write %s or remove the "-" line`, it.text, it.text))
		}
		c, err := b.cidr(l.name, i, it)
		if err != nil {
			return err
		}
		out = append(out, c)
	}
	*dst = out
	return nil
}

// cidr validates item i of list: a CIDR that upstream's net.ParseCIDR takes, aligned to its length, IPv6 only
// when IPv6 is on.
func (b *builder) cidr(list string, i int, it item) (CIDR, error) {
	name := func() string { return fmt.Sprintf("%s[%d]", list, i) } // only errors need it
	p, err := netip.ParsePrefix(it.text)
	if err != nil {
		// netip is stricter than upstream's net.ParseCIDR in one way: a prefix length with a leading zero.
		if _, ipnet, cerr := net.ParseCIDR(it.text); cerr == nil {
			ones, _ := ipnet.Mask.Size()
			addr, _ := netip.AddrFromSlice(ipnet.IP)
			if a, aerr := netip.ParseAddr(it.text[:strings.IndexByte(it.text, '/')]); aerr == nil && a == addr {
				p = netip.PrefixFrom(addr, ones)
				b.warn(it.line, name(), fmt.Sprintf("write %s", p))
				err = nil
			}
		}
	}
	if err != nil {
		fix := "write an address and a prefix length, e.g. 10.0.0.0/8"
		if a, aerr := netip.ParseAddr(it.text); aerr == nil && a.Zone() == "" {
			fix = fmt.Sprintf("add a prefix length: %s/%d", it.text, a.BitLen())
		}
		reason := strings.TrimPrefix(err.Error(), "netip.ParsePrefix("+strconv.Quote(it.text)+"): ")
		e := b.errAt(it.line, name(), it.text, "not a valid CIDR: "+reason, fix)
		e.Err = err
		return CIDR{}, e
	}
	if p.Addr().Is4In6() {
		fix := "write the IPv4 prefix instead"
		if p.Bits() >= 96 {
			fix = "write the IPv4 prefix instead: " + netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked().String()
		}
		return CIDR{}, b.errAt(it.line, name(), it.text, "IPv4-mapped IPv6 prefixes are not supported", fix)
	}
	if m := p.Masked(); m != p {
		return CIDR{}, b.errAt(it.line, name(), it.text, "CIDR is not aligned to its prefix length", "write "+m.String())
	}
	if p.Addr().Is6() && !b.cfg.EnableIPv6 {
		return CIDR{}, b.errAt(it.line, name(), it.text, "IPv6 prefix, but IPv6 is not enabled",
			"pass --enable-ipv6, or set enableIPv6: true in the file")
	}
	return CIDR{Prefix: p, Source: Source{File: b.file, Line: it.line}}, nil
}

// manifest refuses a whole Kubernetes object where its config was meant: upstream would run on the defaults.
func (b *builder) manifest(doc document) error {
	return b.errAt(0, "", "",
		fmt.Sprintf("this is a Kubernetes manifest (top-level keys %s), not an ip-masq-agent config; read as a config it would set nothing, and every pod would run on the defaults",
			strings.Join(doc.topLevel, ", ")),
		"apply the manifest with `kubectl apply -f FILE` rather than `kubectl create configmap --from-file FILE`; a config file holds only what goes under data.config (nonMasqueradeCIDRs, masqLinkLocal, ...)")
}

// sourceFamilies warns when masqueradeSourceCIDRs lists prefixes of one family only while both have a
// masquerade rule: the other family's traffic is then masqueraded from no source at all.
func (b *builder) sourceFamilies(l list) {
	src := b.cfg.MasqueradeSourceCIDRs
	if len(src) == 0 || !b.cfg.EnableIPv6 {
		return
	}
	v4 := slices.ContainsFunc(src, func(c CIDR) bool { return c.Prefix.Addr().Is4() })
	v6 := slices.ContainsFunc(src, func(c CIDR) bool { return c.Prefix.Addr().Is6() })
	switch {
	case !v6:
		b.warn(l.line, l.name, "no IPv6 prefix: IPv6 traffic is masqueraded from no source; list the IPv6 pod range too")
	case !v4:
		b.warn(l.line, l.name, "no IPv4 prefix: IPv4 traffic is masqueraded from no source; list the IPv4 pod range too")
	}
}

// ifNameSize is Linux's IFNAMSIZ less the terminating NUL: the longest interface name.
const ifNameSize = 15

// ifName checks one interface name as Linux takes it; the reason it is not one, or "".
func ifName(name string) (reason, fix string) {
	switch {
	case name == "":
		return "empty interface name", "write the interface's name, e.g. eth0"
	case strings.HasSuffix(name, "*"):
		return "wildcards are not supported", "list each interface by its full name"
	case len(name) > ifNameSize:
		return fmt.Sprintf("longer than %d bytes, the longest interface name Linux takes", ifNameSize), "write the interface's name as `ip link` shows it"
	case name == "." || name == "..":
		return "not an interface name", "write the interface's name as `ip link` shows it"
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Sprintf("%q is not allowed in an interface name", r), "write the interface's name as `ip link` shows it"
		}
	}
	return "", ""
}

// interfaces validates egressInterfaces: names Linux takes, each once; kept sorted.
func (b *builder) interfaces(l list) error {
	if !l.set {
		return nil
	}
	b.cfg.EgressInterfaces = nil
	seen := map[string]int{}
	for i, it := range l.items {
		name := fmt.Sprintf("%s[%d]", l.name, i)
		if it.null {
			b.warn(it.line, name, `empty list item, ignored; remove the "-" line or write an interface name`)
			continue
		}
		if reason, fix := ifName(it.text); reason != "" {
			return b.errAt(it.line, name, it.text, reason, fix)
		}
		if first, dup := seen[it.text]; dup {
			b.warn(it.line, name, fmt.Sprintf("%s is listed already (line %d); remove one", it.text, first))
			continue
		}
		seen[it.text] = it.line
		b.cfg.EgressInterfaces = append(b.cfg.EgressInterfaces, Interface{Name: it.text, Source: Source{File: b.file, Line: it.line}})
	}
	slices.SortFunc(b.cfg.EgressInterfaces, func(x, y Interface) int { return strings.Compare(x.Name, y.Name) })
	return nil
}

// snatTo validates snatTo: addresses, no prefixes, at most one per family, IPv6 only when IPv6 is on.
func (b *builder) snatTo(l list) error {
	if !l.set {
		return nil
	}
	b.cfg.SNATTo = nil
	var byFamily [2]*Address
	for i, it := range l.items {
		name := fmt.Sprintf("%s[%d]", l.name, i)
		if it.null {
			b.warn(it.line, name, `empty list item, ignored; remove the "-" line or write an address`)
			continue
		}
		a, err := netip.ParseAddr(it.text)
		if err != nil {
			fix := "write one address, e.g. 192.0.2.10"
			if p, perr := netip.ParsePrefix(it.text); perr == nil {
				fix = "write the address alone, without a prefix length: " + p.Addr().String()
			}
			e := b.errAt(it.line, name, it.text, "not an address", fix)
			e.Err = err
			return e
		}
		switch {
		case a.Zone() != "":
			return b.errAt(it.line, name, it.text, "an address with a zone cannot be a source", "write the address without %"+a.Zone())
		case a.Is4In6():
			return b.errAt(it.line, name, it.text, "IPv4-mapped IPv6 addresses are not supported", "write the IPv4 address instead: "+a.Unmap().String())
		case a.Is6() && !b.cfg.EnableIPv6:
			return b.errAt(it.line, name, it.text, "IPv6 address, but IPv6 is not enabled", "pass --enable-ipv6, or set enableIPv6: true in the file")
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return b.errAt(it.line, name, it.text, "not an address traffic can leave with (unspecified, loopback, link-local, multicast or broadcast)", "write one of the node's unicast addresses")
		}
		fam := 0
		if a.Is6() {
			fam = 1
		}
		if prev := byFamily[fam]; prev != nil {
			what := "a second IPv4 address"
			if fam == 1 {
				what = "a second IPv6 address"
			}
			if prev.Addr == a {
				what = "listed twice"
			}
			return b.errAt(it.line, name, it.text, fmt.Sprintf("%s (line %d has %s): traffic leaves with one address per family", what, prev.Source.Line, prev.Addr),
				"keep one address of each family")
		}
		addr := Address{Addr: a, Source: Source{File: b.file, Line: it.line}}
		byFamily[fam] = &addr
	}
	for _, a := range byFamily {
		if a != nil {
			b.cfg.SNATTo = append(b.cfg.SNATTo, *a)
		}
	}
	return nil
}

// snatToInterface validates snatToInterface: one interface name.
func (b *builder) snatToInterface(f scalar[string]) error {
	if !f.set {
		return nil
	}
	if reason, fix := ifName(f.v); reason != "" {
		return b.errAt(f.line, f.name, f.v, reason, fix)
	}
	b.cfg.SNATToInterface = Interface{Name: f.v, Source: Source{File: b.file, Line: f.line}}
	return nil
}

// flushConntrack sets flushConntrack, which like enableIPv6 can turn its flag's setting on, never off.
func (b *builder) flushConntrack(f scalar[bool]) {
	switch {
	case !f.set:
	case f.v:
		b.cfg.FlushConntrack = true
	case b.opts.FlushConntrack:
		b.warn(f.line, f.name, "flushConntrack: false does not turn off --flush-conntrack; conntrack entries are still flushed")
	}
}
