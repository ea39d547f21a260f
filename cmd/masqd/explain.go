package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/nft"
)

// host is what the operator commands read from the machine they run on. Tests replace it.
type host struct {
	// kernel reads table inet masqd in this network namespace (nft.Conn.Read; needs CAP_NET_ADMIN).
	kernel func() (nft.Ruleset, bool, error)
	// iptables names the iptables variants ("iptables-nft", "iptables-legacy") whose nat table holds chain;
	// nil means none are looked at.
	iptables func(chain string) []string
	// addrs lists the addresses of this host's interfaces.
	addrs func() ([]netip.Addr, error)
	// get fetches url, as the agent's HTTP client.
	get func(url string) (code int, body []byte, err error)
	now func() time.Time
}

// hostFacts is the real host: this network namespace's kernel and interfaces, HTTP with a short timeout.
func hostFacts() host {
	client := &http.Client{Timeout: 2 * time.Second}
	return host{
		kernel: func() (nft.Ruleset, bool, error) { return nft.NewConn(0).Read() },
		iptables: func(chain string) []string {
			var found []string
			for _, v := range []string{nft.VariantNFT, nft.VariantLegacy} {
				if ipt, err := nft.NewIPTables(v, chain, ""); err == nil {
					if s, err := ipt.Read(); err == nil && (s.V4.Chain || s.V6.Chain) {
						found = append(found, nft.Backend{Kind: nft.KindIPTables, Variant: v}.String())
					}
				}
			}
			return found
		},
		addrs: func() ([]netip.Addr, error) {
			ifaddrs, err := net.InterfaceAddrs()
			if err != nil {
				return nil, err
			}
			var out []netip.Addr
			for _, a := range ifaddrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						out = append(out, ip.Unmap())
					}
				}
			}
			return out, nil
		},
		get: func(url string) (int, []byte, error) {
			resp, err := client.Get(url)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			return resp.StatusCode, body, err
		},
		now: time.Now,
	}
}

const explainUsage = `Usage: masqd explain [flags] ADDRESS...

Says, for each destination, whether a pod's traffic to it is masqueraded (leaves with the node's
address) or keeps the pod's source address, and which entry of the config decided it, with its line:

  10.2.1.100: masqueraded (masqueradeCIDRs 10.2.1.100/32, /etc/config/ip-masq-agent line 5) — source becomes the node IP
  10.128.0.9: source kept (nonMasqueradeCIDRs 10.0.0.0/8, line 2)
  169.254.169.254: kept (link-local; masqLinkLocal is false)

The verdict comes from the same compiler as the rules masqd applies. Addresses of this host (its
interfaces, and loopback) are never masqueraded: the rule skips local destinations. Give the agent's
flags (--config, --enable-ipv6, --nomasq-all-reserved-ranges) to see what the agent does.

With --kernel the verdict is read from the kernel's table inet masqd instead (needs CAP_NET_ADMIN),
and every address where the kernel and the config disagree is pointed out.

Exit status: 0 answered; 1 the kernel disagrees with the config (--kernel); 2 an address is not an
IP address, the config is invalid, or the kernel cannot be read.

Flags:
`

// explainMain is `masqd explain`.
func explainMain(args []string, stdout, stderr io.Writer, h host) int {
	var (
		path    string
		cfgOpts config.Options
		nftOpts nft.Options
		kernel  bool
		output  string
	)
	fs := newFlagSet("masqd explain")
	addConfigFlags(fs, &path, &cfgOpts, &nftOpts)
	fs.BoolVar(&kernel, "kernel", false, "explain from the kernel's table inet masqd, and say where it disagrees with the config")
	fs.StringVar(&output, "output", "text", "output `format`: text or json")
	operands, err := parseCommand(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, explainUsage)
		return 0
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "masqd explain: "+format+"\n", a...)
		return 2
	}
	switch {
	case err != nil:
		return fail("%v", err)
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

	cfg, warnings, err := config.Load(path, cfgOpts)
	printConfigWarnings(stderr, warnings)
	if err != nil {
		return fail("the config is invalid, so there is nothing to explain: %v (masqd check %s lists every problem)", err, path)
	}
	local := func(netip.Addr) bool { return false }
	if addrs, err := h.addrs(); err != nil {
		fmt.Fprintf(stderr, "masqd explain: cannot list this host's addresses, so local destinations are not recognised: %v\n", err)
	} else {
		local = func(a netip.Addr) bool { return a.IsLoopback() || slices.Contains(addrs, a) }
	}

	ex := explanation{Kernel: kernel}
	var have nft.Ruleset
	if kernel {
		var err error
		have, ex.Table, err = h.kernel()
		if err != nil {
			return fail("cannot read the kernel's table inet %s: %v%s", nft.TableName, err, privilegeHint(err))
		}
		ex.Foreign = have.Foreign
	}
	names := entryNamer{}
	for i, dst := range dsts {
		d := nft.Explain(cfg, nftOpts, dst)
		a := addrExplanation{
			Address: operands[i], Masquerade: d.Masquerade, Reason: d.Reason.String(), Local: local(d.Dst),
			File: d.Entry.Source.File, Line: d.Entry.Source.Line,
		}
		if d.Entry.Prefix.IsValid() {
			a.CIDR = d.Entry.Prefix.String()
		}
		if a.Local {
			a.Masquerade, a.Reason, a.CIDR, a.File, a.Line = false, "local", "", "", 0
		}
		said := names.decision(d, a.Local)
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
	// Reason is nft.Reason's name, or "local".
	Reason        string         `json:"reason"`
	CIDR          string         `json:"cidr,omitempty"`
	File          string         `json:"file,omitempty"`
	Line          int            `json:"line,omitempty"`
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

func kernelVerdictOf(have nft.Ruleset, table bool, dst netip.Addr, local bool) kernelVerdict {
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
	set := nft.Set4Name
	if dst.Is6() {
		set = nft.Set6Name
	}
	switch {
	case k.Masquerade:
		return fmt.Sprintf("the kernel masquerades it (no element of set %s holds it) — source becomes the node IP", set)
	case !k.table:
		return fmt.Sprintf("the kernel keeps the source (there is no table inet %s: masqd masquerades nothing)", nft.TableName)
	case dst.Is6() && !k.ipv6Rule:
		return fmt.Sprintf("the kernel keeps the source (table inet %s has no IPv6 rule)", nft.TableName)
	default:
		return fmt.Sprintf("the kernel keeps the source (set %s holds %s)", set, k.Element)
	}
}

func (ex explanation) writeKernelSummary(w io.Writer) {
	switch {
	case !ex.Table:
		fmt.Fprintf(w, "kernel: there is no table inet %s here: masqd has applied nothing in this network namespace\n", nft.TableName)
	case ex.Disagree == 0:
		fmt.Fprintf(w, "kernel: table inet %s agrees with the config for every address\n", nft.TableName)
	}
	if ex.Disagree > 0 {
		fmt.Fprintf(w, "kernel: disagrees with the config for %d of %d addresses: the kernel does not hold this config (see masqd status)\n",
			ex.Disagree, len(ex.Addresses))
	}
	if len(ex.Foreign) > 0 {
		fmt.Fprintf(w, "kernel: table inet %s also holds what masqd does not write (%s): these verdicts read only masqd's own set and rule\n",
			nft.TableName, strings.Join(ex.Foreign, "; "))
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

// entry is "nonMasqueradeCIDRs 10.0.0.0/8, FILE line 2", or "nonMasqueradeCIDRs default 10.0.0.0/8".
func (n entryNamer) entry(key string, c config.CIDR) string {
	if c.Source.File == "" {
		return fmt.Sprintf("%s default %s", key, c.Prefix)
	}
	return fmt.Sprintf("%s %s, %s", key, c.Prefix, n.where(c.Source))
}

// decision words d, or the local verdict when the destination is this host's.
func (n entryNamer) decision(d nft.Decision, local bool) string {
	const becomesNode = " — source becomes the node IP"
	linkLocalKey := "masqLinkLocal"
	if d.Dst.Is6() {
		linkLocalKey = "masqLinkLocalIPv6"
	}
	switch {
	case local:
		return "local to this node: never masqueraded"
	case d.Reason == nft.MasqueradeCIDR:
		return "masqueraded (" + n.entry("masqueradeCIDRs", d.Entry) + ")" + becomesNode
	case d.Reason == nft.NonMasqueradeCIDR:
		return "source kept (" + n.entry("nonMasqueradeCIDRs", d.Entry) + ")"
	case d.Reason == nft.LinkLocal && d.Masquerade:
		return "masqueraded (link-local; " + linkLocalKey + " is true)" + becomesNode
	case d.Reason == nft.LinkLocal:
		return "kept (link-local; " + linkLocalKey + " is false)"
	case d.Reason == nft.NoIPv6Rule:
		return "kept: masqd has no IPv6 rule; pass --enable-ipv6"
	case d.Reason == nft.NoRange:
		return "masqueraded: no non-masquerade range contains it" + becomesNode
	case d.Masquerade:
		return "masqueraded (no config entry explains it: this is a bug in masqd)" + becomesNode
	default:
		return "source kept (no config entry explains it: this is a bug in masqd)"
	}
}

// printConfigWarnings prints the config's warnings, one a line (see warningLines).
func printConfigWarnings(w io.Writer, warnings []config.Warning) {
	for _, l := range warningLines(warnings) {
		fmt.Fprintln(w, l)
	}
}

// warningLines words the config's warnings as FILE:LINE: warning: KEY: MESSAGE, and adds one when the config
// file is a Kubernetes manifest rather than the config inside it.
func warningLines(warnings []config.Warning) []string {
	var lines []string
	manifestKeys := 0
	for _, wn := range warnings {
		lines = append(lines, fmt.Sprintf("%s: warning: %s: %s", location(wn.Source.File, wn.Source.Line), wn.Key, wn.Msg))
		if strings.EqualFold(wn.Key, "apiVersion") || strings.EqualFold(wn.Key, "kind") {
			manifestKeys++
		}
	}
	if manifestKeys == 2 {
		lines = append(lines, fmt.Sprintf("%s: warning: this is a Kubernetes manifest, not a config: "+
			"ip-masq-agent and masqd read its keys as config keys, ignore them, and use the defaults; "+
			"give --config the text under data.config, and check the manifest with masqd check",
			warnings[0].Source.File))
	}
	return lines
}

// location is FILE:LINE, or FILE when the line is not known, or "config" for a built-in default.
func location(file string, line int) string {
	switch {
	case file == "":
		return "config"
	case line <= 0:
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// privilegeHint explains a permission error from the kernel.
func privilegeHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return " (reading nftables needs CAP_NET_ADMIN: run as root on the node)"
	}
	return ""
}
