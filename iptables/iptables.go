package iptables

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// DefaultIPTablesChain is the nat chain ip-masq-agent writes by default (--masq-chain; GKE uses IP-MASQ).
const DefaultIPTablesChain = "IP-MASQ-AGENT"

// The comments ip-masq-agent puts on its rules, byte for byte: existing runbooks and tooling grep for them.
const (
	nonMasqComment = "ip-masq-agent: local traffic is not subject to MASQUERADE"
	masqComment    = "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)"
	// masqCIDRComment marks a masqueradeCIDRs rule. Upstream has no such key; the wording is that of
	// kubernetes-sigs/ip-masq-agent PR #206 (forceMasqueradeCIDRs), the closest upstream precedent.
	masqCIDRComment   = "ip-masq-agent: specific outbound traffic is subject to MASQUERADE (must be before nonMasqRules in chain)"
	jumpCommentFormat = "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom %s chain"
)

// toPortsProtocols are the protocols upstream's --to-ports applies to: the ones MASQUERADE --to-ports accepts.
var toPortsProtocols = []string{"tcp", "udp", "sctp"}

// randomFullyMinVersion is the first iptables release whose MASQUERADE target accepts --random-fully
// (the same threshold Kubernetes' iptables utility uses).
var randomFullyMinVersion = [3]int{1, 6, 2}

// RandomFullySupported reports whether the iptables that printed versionOutput (`iptables --version`, e.g.
// "iptables v1.8.9 (nf_tables)") accepts MASQUERADE --random-fully, which needs iptables 1.6.2 or later.
func RandomFullySupported(versionOutput string) (bool, error) {
	i := strings.Index(versionOutput, " v")
	if i < 0 {
		return false, fmt.Errorf("iptables version: no version in %q", strings.TrimSpace(versionOutput))
	}
	field := strings.Fields(versionOutput[i+2:])
	if len(field) == 0 {
		return false, fmt.Errorf("iptables version: no version in %q", strings.TrimSpace(versionOutput))
	}
	parts := strings.Split(field[0], ".")
	if len(parts) != 3 {
		return false, fmt.Errorf("iptables version: %q is not major.minor.patch", field[0])
	}
	var v [3]int
	for j, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return false, fmt.Errorf("iptables version: %q is not major.minor.patch", field[0])
		}
		v[j] = n
	}
	for j := range v {
		if v[j] != randomFullyMinVersion[j] {
			return v[j] > randomFullyMinVersion[j], nil
		}
	}
	return true, nil
}

// ValidateChainName checks a --masq-chain value: iptables allows 28 characters, no whitespace, and a
// name that is not a built-in target.
func ValidateChainName(name string) error {
	switch {
	case name == "":
		return errors.New("chain name is empty")
	case len(name) > 28:
		return fmt.Errorf("chain name %q is %d characters; iptables allows 28", name, len(name))
	case strings.ContainsAny(name, " \t\n\"'!"):
		return fmt.Errorf("chain name %q contains a space, quote or '!'", name)
	}
	switch name {
	case "ACCEPT", "DROP", "RETURN", "QUEUE", "MASQUERADE", "SNAT", "DNAT", "POSTROUTING", "PREROUTING", "INPUT", "OUTPUT", "FORWARD":
		return fmt.Errorf("chain name %q is a built-in chain or target", name)
	}
	return nil
}

// IPTablesOptions are the flags that shape the iptables rules. The zero value is ip-masq-agent's chain
// without --random-fully and without --to-ports.
type IPTablesOptions struct {
	// Chain is the nat chain (--masq-chain); "" means DefaultIPTablesChain.
	Chain string
	// RandomFully asks for MASQUERADE --random-fully (--random-fully); it is written only when
	// RandomFullySupported says the installed iptables knows it.
	RandomFully          bool
	RandomFullySupported bool
	// ToPorts restricts masqueraded TCP, UDP and SCTP to these source ports (--to-ports); nil: any port.
	ToPorts []ruleset.PortRange
}

// IPTablesRule is one rule of the chain.
type IPTablesRule struct {
	Comment string
	// Dst is the destination matched; the zero Prefix matches any.
	Dst netip.Prefix
	// Proto is "tcp", "udp" or "sctp"; "" matches any protocol.
	Proto string
	// Probability is the statistic match's chance of matching, in (0, 1); 0 means no statistic match.
	Probability float64
	// Target is "RETURN" or "MASQUERADE".
	Target string
	// ToPorts is MASQUERADE's --to-ports; the zero range means none.
	ToPorts     ruleset.PortRange
	RandomFully bool
}

// restoreSpec renders the rule as ip-masq-agent writes it into iptables-restore: the comment first.
func (r IPTablesRule) restoreSpec() string {
	var b strings.Builder
	b.WriteString("-m comment --comment \"" + r.Comment + "\"")
	if r.Dst.IsValid() {
		b.WriteString(" -d " + r.Dst.String())
	}
	if r.Proto != "" {
		b.WriteString(" -p " + r.Proto)
	}
	if r.Probability != 0 {
		fmt.Fprintf(&b, " -m statistic --mode random --probability %0.10f", r.Probability)
	}
	r.writeTarget(&b)
	return b.String()
}

// saveSpec renders the rule as iptables-save prints it back (iptables 1.8, both variants): address and
// protocol first, then the matches in order, the probability as the kernel stores it.
func (r IPTablesRule) saveSpec() string {
	var b strings.Builder
	if r.Dst.IsValid() {
		b.WriteString("-d " + r.Dst.String() + " ")
	}
	if r.Proto != "" {
		b.WriteString("-p " + r.Proto + " ")
	}
	b.WriteString("-m comment --comment \"" + r.Comment + "\"")
	if r.Probability != 0 {
		// libxt_statistic stores lround(p * 2^31) and prints it back with %.11f.
		stored := math.Round(r.Probability*(1<<31)) / (1 << 31)
		fmt.Fprintf(&b, " -m statistic --mode random --probability %.11f", stored)
	}
	r.writeTarget(&b)
	return b.String()
}

func (r IPTablesRule) writeTarget(b *strings.Builder) {
	b.WriteString(" -j " + r.Target)
	if r.ToPorts != (ruleset.PortRange{}) {
		b.WriteString(" --to-ports " + r.ToPorts.String())
	}
	if r.RandomFully {
		b.WriteString(" --random-fully")
	}
}

// IPTablesRules is the iptables state masqd wants, as a value: ip-masq-agent's nat chain for IPv4 and, with
// IPv6 enabled, the same chain in ip6tables, each reached from POSTROUTING by the jump that JumpSpec
// describes. It renders itself as the iptables-restore input ip-masq-agent writes (Payload) and as the
// lines iptables-save prints back (SaveLines).
type IPTablesRules struct {
	Chain string
	V4    []IPTablesRule
	// V6 is the ip6tables chain; meaningful only when IPv6 is set.
	V6   []IPTablesRule
	IPv6 bool
}

// Family selects IPv4 (iptables) or IPv6 (ip6tables).
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// CompileIPTables computes ip-masq-agent's chain for cfg. It is pure. Rules come in upstream's order:
// masqueradeCIDRs first (masqd's key: MASQUERADE before any RETURN, so they win over a containing
// non-masquerade range), then RETURN for the link-local range unless masqLinkLocal, then RETURN for each
// nonMasqueradeCIDR in config order, then for each clusterCIDR (masqd's key and --cluster-cidr) not already
// among them, then the catch-all MASQUERADE. IPv6 prefixes go only to the
// ip6tables chain, which exists only with cfg.EnableIPv6 and starts with fe80::/10 unless
// masqLinkLocalIPv6.
func CompileIPTables(cfg config.Config, opts IPTablesOptions) IPTablesRules {
	chain := opts.Chain
	if chain == "" {
		chain = DefaultIPTablesChain
	}
	randomFully := opts.RandomFully && opts.RandomFullySupported
	family := func(is6, masqLinkLocal bool, linkLocal netip.Prefix) []IPTablesRule {
		var rules []IPTablesRule
		for _, c := range cfg.MasqueradeCIDRs {
			if c.Prefix.Addr().Is6() == is6 {
				rules = append(rules, masqRules(c.Prefix, masqCIDRComment, opts.ToPorts, randomFully)...)
			}
		}
		if !masqLinkLocal {
			rules = append(rules, IPTablesRule{Comment: nonMasqComment, Dst: linkLocal, Target: "RETURN"})
		}
		for _, c := range cfg.NonMasqueradeCIDRs {
			if c.Prefix.Addr().Is6() == is6 {
				rules = append(rules, IPTablesRule{Comment: nonMasqComment, Dst: c.Prefix, Target: "RETURN"})
			}
		}
		for _, c := range cfg.ClusterCIDRs {
			if c.Prefix.Addr().Is6() == is6 && !slices.ContainsFunc(cfg.NonMasqueradeCIDRs, func(n config.CIDR) bool { return n.Prefix == c.Prefix }) {
				rules = append(rules, IPTablesRule{Comment: nonMasqComment, Dst: c.Prefix, Target: "RETURN"})
			}
		}
		return append(rules, masqRules(netip.Prefix{}, masqComment, opts.ToPorts, randomFully)...)
	}
	r := IPTablesRules{Chain: chain, IPv6: cfg.EnableIPv6}
	r.V4 = family(false, cfg.MasqLinkLocal, netip.MustParsePrefix(ruleset.LinkLocal4))
	if cfg.EnableIPv6 {
		r.V6 = family(true, cfg.MasqLinkLocalIPv6, netip.MustParsePrefix(ruleset.LinkLocal6))
	}
	return r
}

// masqRules is MASQUERADE to dst, as upstream writes it: one rule, or with --to-ports for each of TCP, UDP
// and SCTP one rule per range chosen at random in proportion to its size (the statistic match's
// probability is the range's share of the ports not yet offered; the last range takes the rest), then
// the plain rule for every other protocol.
func masqRules(dst netip.Prefix, comment string, ports []ruleset.PortRange, randomFully bool) []IPTablesRule {
	var rules []IPTablesRule
	total := 0
	for _, p := range ports {
		total += p.Size()
	}
	for _, proto := range toPortsProtocols {
		remaining := total
		for _, p := range ports {
			r := IPTablesRule{Comment: comment, Dst: dst, Proto: proto, Target: "MASQUERADE", ToPorts: p, RandomFully: randomFully}
			if p.Size() < remaining {
				r.Probability = float64(p.Size()) / float64(remaining)
			}
			remaining -= p.Size()
			rules = append(rules, r)
		}
	}
	return append(rules, IPTablesRule{Comment: comment, Dst: dst, Target: "MASQUERADE", RandomFully: randomFully})
}

// Rules returns the chain's rules for one family; nil for IPv6 when IPv6 is off.
func (r IPTablesRules) Rules(f Family) []IPTablesRule {
	if f == IPv6 {
		if !r.IPv6 {
			return nil
		}
		return r.V6
	}
	return r.V4
}

// Payload returns, byte for byte, the input ip-masq-agent gives `iptables-restore --noflush` (IPv4) or
// `ip6tables-restore --noflush` (IPv6): the chain declared (which empties it, atomically with the rest),
// its rules, COMMIT. It is nil for IPv6 when IPv6 is off. The POSTROUTING jump is not part of it.
func (r IPTablesRules) Payload(f Family) []byte {
	if f == IPv6 && !r.IPv6 {
		return nil
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", r.Chain)
	for _, rule := range r.Rules(f) {
		fmt.Fprintf(&b, "-A %s %s\n", r.Chain, rule.restoreSpec())
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}

// Payload4 is Payload(IPv4).
func (r IPTablesRules) Payload4() []byte { return r.Payload(IPv4) }

// Payload6 is Payload(IPv6).
func (r IPTablesRules) Payload6() []byte { return r.Payload(IPv6) }

// SaveLines returns the chain's rules as `iptables-save -t nat` prints them once applied ("-A CHAIN ..."),
// which is what Apply compares with the kernel.
func (r IPTablesRules) SaveLines(f Family) []string {
	var out []string
	for _, rule := range r.Rules(f) {
		out = append(out, "-A "+r.Chain+" "+rule.saveSpec())
	}
	return out
}

// JumpComment is the comment on the POSTROUTING jump.
func (r IPTablesRules) JumpComment() string { return fmt.Sprintf(jumpCommentFormat, r.Chain) }

// JumpSpec is the POSTROUTING jump as arguments to `iptables -t nat -C|-A|-D POSTROUTING`: traffic to any
// non-local destination goes through the chain.
func (r IPTablesRules) JumpSpec() []string {
	return []string{"-m", "comment", "--comment", r.JumpComment(), "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", r.Chain}
}

// JumpSaveLine is the jump as iptables-save prints it.
func (r IPTablesRules) JumpSaveLine() string {
	return fmt.Sprintf("-A POSTROUTING -m comment --comment \"%s\" -m addrtype ! --dst-type LOCAL -j %s", r.JumpComment(), r.Chain)
}

// String renders what `masqd --dry-run --mode=iptables` prints: the IPv4 restore payload, then the IPv6 one
// when IPv6 is on, each introduced by `#` comment lines that name the command and the POSTROUTING jump
// masqd ensures beside it. Each section is valid iptables-restore input as it stands.
func (r IPTablesRules) String() string {
	var b strings.Builder
	for _, f := range []Family{IPv4, IPv6} {
		p := r.Payload(f)
		if p == nil {
			continue
		}
		cmd := "iptables"
		if f == IPv6 {
			cmd = "ip6tables"
		}
		fmt.Fprintf(&b, "# %s: %s-restore --noflush -w 5 input for chain %s in table nat\n", f, cmd, r.Chain)
		fmt.Fprintf(&b, "# %s: jump ensured in POSTROUTING: %s\n", f, r.JumpSaveLine())
		b.Write(p)
	}
	return b.String()
}

// stateDiff shows a family's chain as read next to want.
func stateDiff(have IPTablesChainState, want IPTablesRules, f Family) string {
	w := append([]string{want.JumpSaveLine()}, want.SaveLines(f)...)
	h := append(slices.Clone(have.Jumps), have.Rules...)
	if !have.Chain {
		h = append(h, "(no chain "+want.Chain+")")
	}
	return "want:\n\t" + strings.Join(w, "\n\t") + "\nhave:\n\t" + strings.Join(h, "\n\t")
}

// Unsupported returns an error wrapping ruleset.ErrNotSupported, naming the entry, when cfg asks for what
// ip-masq-agent's chain cannot do: masqueradeSourceCIDRs (POSTROUTING jumps to the chain for every source,
// and the chain matches destinations only), egressInterfaces (the jump is taken for every outgoing
// interface), snatTo and snatToInterface (the chain's verdict is ip-masq-agent's MASQUERADE, which
// migration and cleanup recognise it by). nil when the chain can do all cfg asks. It is pure.
func Unsupported(cfg config.Config) error {
	const way = "use --mode=nftables (or auto on a kernel with nftables NAT), or remove "
	switch {
	case len(cfg.MasqueradeSourceCIDRs) > 0:
		c := cfg.MasqueradeSourceCIDRs[0]
		return fmt.Errorf("%s: masqueradeSourceCIDRs (%s) cannot be applied in iptables mode: ip-masq-agent's chain "+
			"is reached for every source and matches destinations only; "+way+"masqueradeSourceCIDRs: %w", c.Source.Location(), c.Prefix, ruleset.ErrNotSupported)
	case len(cfg.EgressInterfaces) > 0:
		i := cfg.EgressInterfaces[0]
		return fmt.Errorf("%s: egressInterfaces (%s) cannot be applied in iptables mode: ip-masq-agent's chain "+
			"is reached for traffic leaving through any interface; "+way+"egressInterfaces: %w", i.Source.Location(), i.Name, ruleset.ErrNotSupported)
	case len(cfg.SNATTo) > 0:
		a := cfg.SNATTo[0]
		return fmt.Errorf("%s: snatTo (%s) cannot be applied in iptables mode: ip-masq-agent's chain masquerades "+
			"with the outgoing interface's address; "+way+"snatTo: %w", a.Source.Location(), a.Addr, ruleset.ErrNotSupported)
	case cfg.SNATToInterface.Name != "":
		i := cfg.SNATToInterface
		return fmt.Errorf("%s: snatToInterface (%s) cannot be applied in iptables mode: ip-masq-agent's chain masquerades "+
			"with the outgoing interface's address; "+way+"snatToInterface: %w", i.Source.Location(), i.Name, ruleset.ErrNotSupported)
	}
	return nil
}
