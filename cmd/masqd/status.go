package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/status"
)

const statusUsage = `Usage: masqd status [flags]

Compares the config (the intent) with the kernel's table inet masqd (the reality), and prints the
backend, whether the table is there, the non-masquerade intervals of each family in the config and
in the kernel and how they differ, the rules' counters (packets and bytes masqueraded), and, when a
masqd agent answers on --http-address, whether it is ready and when it last synced.

Give it the agent's flags (--config, --enable-ipv6, --nomasq-all-reserved-ranges, --random-fully,
--to-ports):
it compiles the config with them, as the agent does. It compares with the config file; an agent
that watches ConfigMaps through the API (--configmap) may hold a newer one. Reading the kernel
needs CAP_NET_ADMIN: run it as root on the node (or in its network namespace). With no table inet
masqd, it looks for the agent's --masq-chain in iptables (masqd --mode=iptables) and says where it is.

Exit status: 0 the kernel holds the config; 1 it does not; 2 cannot tell (the config is invalid,
the kernel cannot be read). It fits a probe or a cron check.

Flags:
`

// statusMain is `masqd status`.
func statusMain(args []string, stdout, stderr io.Writer, h status.Host) int {
	var (
		output string
		addr   string
		chain  string
	)
	c := newCommand("masqd status", statusUsage)
	c.fs.StringVar(&output, "output", "text", "output `format`: text or json")
	c.fs.StringVar(&chain, "masq-chain", iptables.DefaultIPTablesChain, "the agent's iptables `chain`, looked for when there is no table inet masqd (--mode=iptables)")
	c.fs.StringVar(&addr, "http-address", "127.0.0.1:9745", "`address` of the agent's HTTP endpoints (its --http-address); empty to not ask")
	discover := addDiscoverFlags(c)
	operands, code, ok := c.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case output != "text" && output != "json":
		return c.fail(stderr, "--output=%q: want text or json", output)
	case len(operands) > 0:
		return c.fail(stderr, "unexpected argument %q (status takes only flags)", operands[0])
	}

	switch {
	case !discover.on:
		h.PodCIDRs = nil
	case h.PodCIDRs == nil: // tests give theirs
		h.PodCIDRs = discover.read
	}
	r := status.Read(c.path, c.cfg, c.nft, addr, chain, h)
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "masqd status: %v\n", err)
			return 2
		}
	} else {
		writeStatusText(stdout, r, h.Now())
	}
	switch r.Result {
	case status.Match:
		return 0
	case status.Mismatch:
		return 1
	}
	return 2
}

// writeText prints the report for people; now dates the agent's last sync.
func writeStatusText(w io.Writer, r status.Report, now time.Time) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-10s%s\n", label, fmt.Sprintf(format, a...))
	}
	more := func(format string, a ...any) { line("", format, a...) }

	switch r.Result {
	case status.Match:
		fmt.Fprintln(w, "masqd status: match: the kernel holds the config")
	case status.Mismatch:
		fmt.Fprintln(w, "masqd status: MISMATCH: the kernel does not hold the config")
	default:
		fmt.Fprintln(w, "masqd status: UNKNOWN: cannot compare the config with the kernel")
	}
	if len(r.IPTables) > 0 {
		line("backend:", "%s (no table %s; chain in iptables); this command compares only nftables", strings.Join(r.IPTables, ", "), r.Table)
	} else if a := r.Agent; a != nil && a.Backend != "" && a.Backend != r.Backend {
		line("backend:", "%s (the agent's); this command reads only %s, table %s", a.Backend, r.Backend, r.Table)
	} else {
		line("backend:", "%s, table %s", r.Backend, r.Table)
	}

	switch c := r.Config; {
	case !c.Valid:
		line("config:", "%s: INVALID: %s", c.Path, c.Error)
	case len(c.Files) == 0:
		line("config:", "%s: not found, so the built-in defaults (as ip-masq-agent without a ConfigMap)", c.Path)
	case len(c.Files) == 1 && c.Files[0] == c.Path:
		line("config:", "%s (valid)", c.Path)
	default:
		line("config:", "%s (valid): %s", c.Path, strings.Join(c.Files, ", "))
	}
	for _, wn := range r.Config.Warnings {
		more("%s", wn)
	}
	if len(r.Config.ClusterCIDRs) > 0 {
		more("pod ranges kept (clusterCIDRs, --cluster-cidr): %s", abbreviate(r.Config.ClusterCIDRs, 8))
	}
	if r.Config.FlushConntrack {
		more("conntrack: flows to destinations an edit flips are flushed after the commit (flushConntrack, --flush-conntrack)")
	}

	switch k := r.Kernel; {
	case !k.Readable:
		line("kernel:", "cannot read table %s: %s", r.Table, k.Error)
	case k.Present:
		line("kernel:", "table %s present", r.Table)
	default:
		line("kernel:", "no table %s", r.Table)
	}

	for _, f := range r.Families {
		label := map[string]string{"ipv4": "IPv4:", "ipv6": "IPv6:"}[f.Family]
		verdict := "match"
		if !f.Match {
			verdict = "DIFFER"
		}
		side := func(rule bool, n int, where string) string {
			switch {
			case rule:
				return fmt.Sprintf("%s in %s", plural(n, "interval"), where)
			case f.Family == "ipv6" && where == "the config":
				return "no IPv6 rule in the config (no --enable-ipv6)"
			case where == "the kernel" && !r.Kernel.Present:
				return "nothing in the kernel"
			default:
				return "no rule in " + where
			}
		}
		line(label, "%s, %s: %s", side(f.ConfigRule, f.ConfigIntervals, "the config"), side(f.KernelRule, f.KernelIntervals, "the kernel"), verdict)
		list := func(what string, items []string) {
			if len(items) > 0 {
				more("  %s %s", what, abbreviate(items, 8))
			}
		}
		list("only in the config:", f.OnlyInConfig)
		list("only in the kernel:", f.OnlyInKernel)
		list("so the kernel masquerades, where the config keeps the pod source:", f.KernelMasquerades)
		list("so the kernel keeps the pod source, where the config masquerades:", f.KernelKeeps)
		if f.ConfigRule && f.KernelRule && len(f.KernelMasquerades)+len(f.KernelKeeps) == 0 && !f.Match {
			more("  the same addresses, split into other intervals: packets are treated alike")
		}
	}
	if s := r.Sources; s != nil {
		side := func(ivs []string, where string) string {
			if ivs == nil {
				return "every source in " + where
			}
			return fmt.Sprintf("only from %s in %s", abbreviate(ivs, 8), where)
		}
		verdict := "match"
		if !s.Match {
			verdict = "DIFFER"
		}
		line("sources:", "masquerade %s, %s: %s", side(s.Config, "the config"), side(s.Kernel, "the kernel"), verdict)
	}
	if s := r.SNAT; s != nil {
		egress := func(names []string, where string) string {
			if names == nil {
				return "through any interface in " + where
			}
			return fmt.Sprintf("only through %s in %s", strings.Join(names, ", "), where)
		}
		to := func(fams []string, where string) string {
			if fams == nil {
				return "nothing in " + where
			}
			return strings.Join(fams, ", ") + " in " + where
		}
		verdict := "match"
		if !s.Match {
			verdict = "DIFFER"
		}
		config := "the config"
		if s.Interface != "" {
			config = "the config (snatToInterface " + s.Interface + " as resolved here)"
		}
		line("egress:", "masquerade %s, %s", egress(s.ConfigEgress, "the config"), egress(s.KernelEgress, "the kernel"))
		line("source:", "%s, %s: %s", to(s.ConfigTo, config), to(s.KernelTo, "the kernel"), verdict)
		for _, w := range s.Warnings {
			line("warning:", "%s", w)
		}
	}
	if rf := r.RandomFully; rf != nil {
		words := func(randomFully bool) string { return snatWords(r.SNAT, status.MasqueradeWords(randomFully)) }
		if rf.Config == rf.Kernel {
			line("rule:", "%s in the config and the kernel: match", words(rf.Config))
		} else {
			line("rule:", "%s in the config, %s in the kernel: DIFFER", words(rf.Config), words(rf.Kernel))
		}
	}
	for i, f := range r.Kernel.Foreign {
		label := ""
		if i == 0 {
			label = "foreign:"
		}
		line(label, "%s", f)
	}
	if r.Kernel.Present {
		var parts []string
		for _, f := range r.Families {
			name := map[string]string{"ipv4": "IPv4", "ipv6": "IPv6"}[f.Family]
			if f.KernelRule {
				parts = append(parts, fmt.Sprintf("%s %d packets, %d bytes masqueraded", name, f.Packets, f.Bytes))
			} else {
				parts = append(parts, name+" no rule")
			}
		}
		if len(parts) > 0 {
			line("counters:", "%s", strings.Join(parts, "; "))
		}
	}
	if a := r.Agent; a != nil {
		writeAgentText(a, line, now)
	}
	for i, d := range r.Diagnosis {
		label := ""
		if i == 0 {
			label = "why:"
		}
		line(label, "%s", d)
	}
}

func writeAgentText(a *status.Agent, line func(label, format string, a ...any), now time.Time) {
	if !a.Reachable {
		line("agent:", "nothing answers on %s (no agent runs here, or it serves another --http-address): %s", a.Address, a.Error)
		return
	}
	name := a.Address
	if a.Version != "" {
		name += " (masqd " + a.Version + ")"
	}
	parts := []string{"ready"}
	if !a.Ready {
		parts = []string{"NOT ready: " + a.NotReady}
	}
	switch {
	case a.LastSync != nil:
		parts = append(parts, fmt.Sprintf("last successful sync %s (%s ago)", a.LastSync.Format(time.RFC3339),
			now.Sub(*a.LastSync).Round(time.Second)))
	case a.Error == "":
		parts = append(parts, "never synced successfully")
	}
	switch {
	case a.ConfigState == "defaults_file_absent":
		parts = append(parts, "defaults: file absent (no file at its --config)")
	case a.ConfigState == "defaults_configmap_absent":
		parts = append(parts, "defaults: ConfigMap absent")
	case a.ConfigState == "invalid_nothing_applied":
		parts = append(parts, "config REJECTED (nothing applied: it holds no rules on this node)")
	case a.ConfigValid != nil && *a.ConfigValid:
		parts = append(parts, "config valid")
	case a.ConfigValid != nil:
		parts = append(parts, "config REJECTED (it keeps the last good rules)")
	}
	if a.SyncsOK != nil && a.SyncsFailed != nil {
		parts = append(parts, fmt.Sprintf("syncs: %d ok, %d failed", *a.SyncsOK, *a.SyncsFailed))
	}
	if a.DriftRepairs != nil {
		parts = append(parts, fmt.Sprintf("drift repairs: %d", *a.DriftRepairs))
	}
	if on := a.ConntrackFlush; on != nil && *on {
		flush := "conntrack flush on"
		if a.ConntrackDeleted != nil {
			flush += fmt.Sprintf(": %d entries deleted", *a.ConntrackDeleted)
		}
		if a.ConntrackFlushErrors != nil && *a.ConntrackFlushErrors > 0 {
			flush += fmt.Sprintf(", %d FAILED (see the log)", *a.ConntrackFlushErrors)
		}
		parts = append(parts, flush)
	}
	if a.DiscoveredPodCIDRs != nil {
		parts = append(parts, fmt.Sprintf("pod ranges from the Nodes: %d", *a.DiscoveredPodCIDRs))
	}
	if a.Error != "" {
		parts = append(parts, "metrics: "+a.Error)
	}
	line("agent:", "%s: %s", name, strings.Join(parts, "; "))
	if !a.Ready || (a.ConfigValid != nil && !*a.ConfigValid) {
		line("", "the last error is in the agent's log (kubectl logs -n kube-system POD, or journalctl -u masqd)")
	}
	if len(a.NodePodCIDRsMasqueraded) > 0 {
		line("node:", "pod ranges MASQUERADED by the agent's config: %s: pods on other nodes reach this node's pods with their node's address; "+
			"add them to nonMasqueradeCIDRs or clusterCIDRs, or pass --cluster-cidr", strings.Join(a.NodePodCIDRsMasqueraded, ", "))
	}
	if len(a.NodePodCIDRsKept) > 0 {
		label := "node:"
		if len(a.NodePodCIDRsMasqueraded) > 0 {
			label = ""
		}
		line(label, "pod ranges kept non-masquerade by the agent's config: %s", strings.Join(a.NodePodCIDRsKept, ", "))
	}
}

// plural is "1 interval", "2 intervals".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// abbreviate joins at most n items, and says how many more there are.
func abbreviate(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s, … and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// snatWords names the rule's verdict in masquerade's words ("masquerade random,fully-random"): "snat" for it
// when every family of the config has a snatTo address, "snat or masquerade" when some have (the source line
// says which).
func snatWords(s *status.SNAT, masquerade string) string {
	if s == nil {
		return masquerade
	}
	snat := 0
	for _, to := range s.ConfigTo {
		if !strings.HasSuffix(to, " masquerade") {
			snat++
		}
	}
	switch {
	case snat == 0:
		return masquerade
	case snat == len(s.ConfigTo):
		return strings.Replace(masquerade, "masquerade", "snat", 1)
	default:
		return strings.Replace(masquerade, "masquerade", "snat or masquerade", 1)
	}
}
