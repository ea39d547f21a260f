package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
	"github.com/masqd/masqd/status"
)

const explainUsage = `Usage: masqd explain [flags] ADDRESS...

Says, for each destination, whether a pod's traffic to it is masqueraded (leaves with the node's
address) or keeps the pod's source address, and which entry of the config decided it, with its line:

  10.2.1.100: masqueraded (masqueradeCIDRs 10.2.1.100/32, /etc/config/ip-masq-agent line 5) — source becomes the node IP
  10.128.0.9: source kept (nonMasqueradeCIDRs 10.0.0.0/8, line 2)
  100.64.3.4: source kept (a pod range: --cluster-cidr 100.64.0.0/10)
  169.254.169.254: kept (link-local; masqLinkLocal is false)

The verdict comes from the same compiler as the rules masqd applies. Addresses of this host (its
interfaces, and loopback) are never masqueraded: the rule skips local destinations. Give the agent's
flags (--config, --enable-ipv6, --nomasq-all-reserved-ranges, --cluster-cidr) to see what the agent does.

With --kernel the verdict is read from the kernel's table inet masqd instead (needs CAP_NET_ADMIN),
and every address where the kernel and the config disagree is pointed out.

Exit status: 0 answered; 1 the kernel disagrees with the config (--kernel); 2 an address is not an
IP address, the config is invalid, or the kernel cannot be read.

Flags:
`

// explainMain is `masqd explain`.
func explainMain(args []string, stdout, stderr io.Writer, h status.Host) int {
	var (
		kernel bool
		output string
	)
	c := newCommand("masqd explain", explainUsage)
	c.fs.BoolVar(&kernel, "kernel", false, "explain from the kernel's table inet masqd, and say where it disagrees with the config")
	c.fs.StringVar(&output, "output", "text", "output `format`: text or json")
	discover := addDiscoverFlags(c)
	operands, code, ok := c.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int { return c.fail(stderr, format, a...) }
	switch {
	case output != "text" && output != "json":
		return fail("--output=%q: want text or json", output)
	case len(operands) == 0:
		return fail("no address: give one or more destinations, e.g. masqd explain 10.2.1.100 8.8.8.8")
	}
	dsts := make([]netip.Addr, len(operands))
	for i, s := range operands {
		a, err := netip.ParseAddr(s)
		if err != nil {
			if p, perr := netip.ParsePrefix(s); perr == nil {
				return fail("%q is a prefix, not an address: give one address of it, e.g. %s", s, p.Addr())
			}
			return fail("%q is not an IP address", s)
		}
		dsts[i] = a
	}

	cfg, warnings, err := config.Load(c.path, c.cfg)
	printConfigWarnings(stderr, warnings)
	if err != nil {
		return fail("the config is invalid, so there is nothing to explain: %v (masqd check %s lists every problem)", err, c.path)
	}
	if discover.on {
		if h.PodCIDRs == nil { // tests give theirs
			h.PodCIDRs = discover.read
		}
		pods, err := h.PodCIDRs()
		if err != nil {
			return fail("--discover-pod-cidrs: %v", err)
		}
		cfg = config.WithNodePodCIDRs(cfg, pods)
	}
	local := func(netip.Addr) bool { return false }
	if addrs, err := h.Addrs(); err != nil {
		fmt.Fprintf(stderr, "masqd explain: cannot list this host's addresses, so local destinations are not recognised: %v\n", err)
	} else {
		local = func(a netip.Addr) bool { return a.IsLoopback() || slices.Contains(addrs, a) }
	}

	ex := explanation{Kernel: kernel}
	var have ruleset.Ruleset
	if kernel {
		var err error
		have, ex.Table, err = h.Kernel()
		if err != nil {
			return fail("cannot read the kernel's table inet %s: %v%s", ruleset.TableName, err, status.PrivilegeHint(err))
		}
		ex.Foreign = have.Foreign
	}
	for _, c := range cfg.MasqueradeSourceCIDRs {
		ex.Sources = append(ex.Sources, c.Prefix.String())
	}
	for _, i := range cfg.EgressInterfaces {
		ex.Egress = append(ex.Egress, i.Name)
	}
	nopts := c.nft
	if name := cfg.SNATToInterface.Name; name != "" {
		nopts.Interface = ruleset.InterfaceAddrs{Name: name}
		ierr := errors.New("not resolved by this command")
		if h.Interface != nil {
			nopts.Interface, ierr = h.Interface(name)
		}
		if ierr != nil {
			fmt.Fprintf(stderr, "masqd explain: snatToInterface %s is not resolved here (%v): its families are shown masqueraded with the outgoing interface's address\n", name, ierr)
		}
	}
	snatKey := "snatTo"
	if cfg.SNATToInterface.Name != "" {
		snatKey = "snatToInterface " + cfg.SNATToInterface.Name
	}
	ex.FlushConntrack = cfg.FlushConntrack
	names := entryNamer{}
	for i, dst := range dsts {
		d := ruleset.Explain(cfg, nopts, dst)
		a := addrExplanation{
			Address: operands[i], Masquerade: d.Masquerade, Reason: d.Reason.String(), Local: local(d.Dst),
			File: d.Entry.Source.File, Line: d.Entry.Source.Line, Flag: d.Entry.Source.Flag,
		}
		if d.Entry.Prefix.IsValid() {
			a.CIDR = d.Entry.Prefix.String()
		}
		if a.Local {
			a.Masquerade, a.Reason, a.CIDR, a.File, a.Line, a.Flag = false, "local", "", "", 0, ""
		}
		said := names.decision(d, a.Local)
		if d.SNAT.IsValid() && !a.Local {
			a.SNAT = d.SNAT.String()
			said = strings.Replace(said, becomesNode, " — source becomes "+a.SNAT+" ("+snatKey+")", 1)
		}
		a.Text = operands[i] + ": " + said
		if kernel {
			k := kernelVerdictOf(have, ex.Table, d.Dst, a.Local)
			if k.Masquerade != a.Masquerade {
				k.Agrees = false
				ex.Disagree++
				a.Text = operands[i] + ": " + k.text(d.Dst) + "; the config says: " + said
			}
			a.KernelVerdict = &k
		}
		ex.Addresses = append(ex.Addresses, a)
	}

	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return fail("%v", err)
		}
	} else {
		for _, a := range ex.Addresses {
			fmt.Fprintln(stdout, a.Text)
		}
		if len(ex.Sources) > 0 {
			c := cfg.MasqueradeSourceCIDRs[0]
			fmt.Fprintf(stdout, "sources: these verdicts are for traffic from %s (masqueradeSourceCIDRs, %s); traffic from any other source keeps its address\n",
				strings.Join(ex.Sources, ", "), c.Source)
		}
		if len(ex.Egress) > 0 {
			i := cfg.EgressInterfaces[0]
			fmt.Fprintf(stdout, "egress: these verdicts are for traffic leaving through %s (egressInterfaces, %s); traffic leaving through any other interface keeps its address\n",
				strings.Join(ex.Egress, ", "), i.Source)
		}
		if ex.FlushConntrack {
			fmt.Fprintln(stdout, "conntrack: when an edit changes one of these verdicts, flows already going there take the new one right after the commit (flushConntrack, --flush-conntrack)")
		}
		if kernel {
			ex.writeKernelSummary(stdout)
		}
	}
	if ex.Disagree > 0 {
		return 1
	}
	return 0
}

// explanation is the whole answer of `masqd explain`, as --output=json prints it.
type explanation struct {
	Addresses []addrExplanation `json:"addresses"`
	// Sources are masqueradeSourceCIDRs' prefixes: the verdicts are for traffic from them; other sources are
	// never masqueraded. Empty: every source.
	Sources []string `json:"sources,omitempty"`
	// Egress are egressInterfaces: the verdicts are for traffic leaving through them; through any other
	// interface nothing is masqueraded. Empty: any interface.
	Egress []string `json:"egress,omitempty"`
	// FlushConntrack: after a commit that flips a destination, flows already going there take the new verdict
	// (flushConntrack, --flush-conntrack); false: they keep their translation until they end.
	FlushConntrack bool `json:"flushConntrack,omitempty"`
	// Kernel is set with --kernel; Table, Foreign and Disagree are only meaningful then.
	Kernel   bool     `json:"kernel"`
	Table    bool     `json:"table,omitempty"`
	Foreign  []string `json:"foreign,omitempty"`
	Disagree int      `json:"disagree,omitempty"`
}

// addrExplanation is one destination: the config's verdict and reason, and the kernel's with --kernel.
type addrExplanation struct {
	Address    string `json:"address"`
	Masquerade bool   `json:"masquerade"`
	Local      bool   `json:"local"`
	// Reason is ruleset.Reason's name, or "local".
	Reason string `json:"reason"`
	CIDR   string `json:"cidr,omitempty"`
	File   string `json:"file,omitempty"`
	Flag   string `json:"flag,omitempty"`
	Line   int    `json:"line,omitempty"`
	// SNAT is the address a masqueraded destination's traffic leaves with (snatTo, snatToInterface); "" for
	// the outgoing interface's.
	SNAT          string         `json:"snat,omitempty"`
	Text          string         `json:"text"`
	KernelVerdict *kernelVerdict `json:"kernelVerdict,omitempty"`
}

// kernelVerdict is what the kernel's table does with one destination.
type kernelVerdict struct {
	Masquerade bool `json:"masquerade"`
	// Element is the set element that keeps the pod source, as the kernel holds it; "" when none does.
	Element string `json:"element,omitempty"`
	Agrees  bool   `json:"agrees"`

	table, ipv6Rule bool
}

func kernelVerdictOf(have ruleset.Ruleset, table bool, dst netip.Addr, local bool) kernelVerdict {
	k := kernelVerdict{Agrees: true, table: table, ipv6Rule: have.IPv6}
	if !table || local {
		return k
	}
	k.Masquerade = have.Masquerades(dst)
	if iv, ok := have.Element(dst); ok {
		k.Element = iv.String()
	}
	return k
}

// text is the kernel's verdict, for a line where it disagrees with the config.
func (k kernelVerdict) text(dst netip.Addr) string {
	set := ruleset.Set4Name
	if dst.Is6() {
		set = ruleset.Set6Name
	}
	switch {
	case k.Masquerade:
		return fmt.Sprintf("the kernel masquerades it (no element of set %s holds it) — source becomes the node IP", set)
	case !k.table:
		return fmt.Sprintf("the kernel keeps the source (there is no table inet %s: masqd masquerades nothing)", ruleset.TableName)
	case dst.Is6() && !k.ipv6Rule:
		return fmt.Sprintf("the kernel keeps the source (table inet %s has no IPv6 rule)", ruleset.TableName)
	default:
		return fmt.Sprintf("the kernel keeps the source (set %s holds %s)", set, k.Element)
	}
}

func (ex explanation) writeKernelSummary(w io.Writer) {
	switch {
	case !ex.Table:
		fmt.Fprintf(w, "kernel: there is no table inet %s here: masqd has applied nothing in this network namespace\n", ruleset.TableName)
	case ex.Disagree == 0:
		fmt.Fprintf(w, "kernel: table inet %s agrees with the config for every address\n", ruleset.TableName)
	}
	if ex.Disagree > 0 {
		fmt.Fprintf(w, "kernel: disagrees with the config for %d of %d addresses: the kernel does not hold this config (see masqd status)\n",
			ex.Disagree, len(ex.Addresses))
	}
	if len(ex.Foreign) > 0 {
		fmt.Fprintf(w, "kernel: table inet %s also holds what masqd does not write (%s): these verdicts read only masqd's own set and rule\n",
			ruleset.TableName, strings.Join(ex.Foreign, "; "))
	}
}

// entryNamer words decisions. It names a config file the first time one of its entries is cited, and gives
// only the line after that.
type entryNamer map[string]bool

func (n entryNamer) where(s config.Source) string {
	if n[s.File] {
		return fmt.Sprintf("line %d", s.Line)
	}
	n[s.File] = true
	return s.String()
}

// entry is "nonMasqueradeCIDRs 10.0.0.0/8, FILE line 2", "nonMasqueradeCIDRs default 10.0.0.0/8", or for a
// flag's entry "--cluster-cidr 100.64.0.0/10".
func (n entryNamer) entry(key string, c config.CIDR) string {
	if c.Source.Flag != "" {
		return fmt.Sprintf("%s %s", c.Source.Flag, c.Prefix)
	}
	if c.Source.File == "" {
		return fmt.Sprintf("%s default %s", key, c.Prefix)
	}
	return fmt.Sprintf("%s %s, %s", key, c.Prefix, n.where(c.Source))
}

// becomesNode ends a masqueraded verdict (snatTo and snatToInterface name their address instead).
const becomesNode = " — source becomes the node IP"

// decision words d, or the local verdict when the destination is this host's.
func (n entryNamer) decision(d ruleset.Decision, local bool) string {
	linkLocalKey := "masqLinkLocal"
	if d.Dst.Is6() {
		linkLocalKey = "masqLinkLocalIPv6"
	}
	switch {
	case local:
		return "local to this node: never masqueraded"
	case d.Reason == ruleset.MasqueradeCIDR:
		return "masqueraded (" + n.entry("masqueradeCIDRs", d.Entry) + ")" + becomesNode
	case d.Reason == ruleset.NonMasqueradeCIDR:
		return "source kept (" + n.entry("nonMasqueradeCIDRs", d.Entry) + ")"
	case d.Reason == ruleset.ClusterCIDR:
		return "source kept (a pod range: " + n.entry("clusterCIDRs", d.Entry) + ")"
	case d.Reason == ruleset.LinkLocal && d.Masquerade:
		return "masqueraded (link-local; " + linkLocalKey + " is true)" + becomesNode
	case d.Reason == ruleset.LinkLocal:
		return "kept (link-local; " + linkLocalKey + " is false)"
	case d.Reason == ruleset.NoIPv6Rule:
		return "kept: masqd has no IPv6 rule; pass --enable-ipv6"
	case d.Reason == ruleset.NoRange:
		return "masqueraded: no non-masquerade range contains it" + becomesNode
	case d.Masquerade:
		return "masqueraded (no config entry explains it: this is a bug in masqd)" + becomesNode
	default:
		return "source kept (no config entry explains it: this is a bug in masqd)"
	}
}

// printConfigWarnings prints the config's warnings, one a line (see warningLines).
func printConfigWarnings(w io.Writer, warnings []config.Warning) {
	for _, l := range config.WarningLines(warnings) {
		fmt.Fprintln(w, l)
	}
}
