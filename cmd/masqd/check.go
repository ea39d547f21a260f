package main

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
	"github.com/masqd/masqd/status"
)

const checkUsage = `Usage: masqd check [flags] [FILE...]

Checks a config file, or a Kubernetes ConfigMap manifest as written for kubectl apply, before it is
applied; then prints what the config would do (the same text as masqd --dry-run). With no FILE it
checks --config; a FILE of - is the standard input (... | masqd check -).

A manifest is recognised by its apiVersion and kind. It must be a ConfigMap named ip-masq-agent in
kube-system, with the config as a block string under data.config:

  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: ip-masq-agent
    namespace: kube-system
  data:
    config: |
      nonMasqueradeCIDRs:
        - 10.0.0.0/8

Every finding is one line, FILE:LINE: error|warning|note: what is wrong; how to fix it. Lines inside
config: | are the manifest's lines. Errors stop the config from being applied (by kubectl, by
ip-masq-agent or by masqd); warnings are things that work but are likely mistakes (unknown keys,
flags written as keys); notes are things that work as written but read oddly. Give it the agent's
flags (--enable-ipv6, --nomasq-all-reserved-ranges, --random-fully): they change what is valid and
what the config does.

With --node NAME (the Node read from the apiserver through --kubeconfig, or the pod's ServiceAccount)
or --node-pod-cidr CIDR (offline: the range as kubectl get node NAME -o jsonpath='{.spec.podCIDRs}'
prints it), it also says whether the config keeps that node's pod ranges non-masquerade, as the agent
with --node-name does: a masqueraded one is a warning, since pods on other nodes would reach the
node's pods with their node's address.

Exit status: 0 no errors (and, with --node or --node-pod-cidr, no pod range masqueraded); 1 errors,
or a pod range masqueraded; 2 a file or the Node cannot be read.

Flags:
`

// checkMain is `masqd check`.
func checkMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		nodeName, kubeconfig string
		podCIDRs             []netip.Prefix
	)
	c := newCommand("masqd check", checkUsage)
	c.fs.StringVar(&nodeName, "node", "", "also check that the config keeps this Node's spec.podCIDRs non-masquerade (reads the Node `name`d from the apiserver)")
	c.fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig `file` for --node; default: the pod's ServiceAccount")
	c.fs.Func("node-pod-cidr", "also check that the config keeps these pod `CIDRs` (a node's spec.podCIDRs) non-masquerade, offline; repeatable or separated by commas", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("%w (a prefix such as 10.244.1.0/24)", err)
			}
			podCIDRs = append(podCIDRs, p.Masked())
		}
		return nil
	})
	files, code, ok := c.parse(args, stdout, stderr)
	if !ok {
		return code
	}
	if len(files) == 0 {
		files = []string{c.path}
	}
	node := "--node-pod-cidr"
	if nodeName != "" {
		pods, err := readNodePodCIDRs(nodeName, kubeconfig)
		if err != nil {
			fmt.Fprintf(stderr, "masqd check: --node: %v\n", err)
			return 2
		}
		node, podCIDRs = "node "+nodeName, append(podCIDRs, pods...)
	}
	check := nodeName != "" || len(podCIDRs) > 0
	for i, file := range files {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		data, err := readCheckFile(file, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "masqd check: %v\n", err)
			code = 2
			continue
		}
		name := file
		if file == "-" {
			name = stdinName
		}
		res := config.Check(data, c.cfg)
		var kept []string
		if check && checkPodCIDRs(res, node, podCIDRs, c.nft, &kept) && code == 0 {
			code = 1
		}
		writeCheck(stdout, res, name, c.nft, kept...)
		if res.Count(config.SevError) > 0 && code == 0 {
			code = 1
		}
	}
	return code
}

// checkPodCIDRs adds to res a warning for each pod range of pods that a config of res masquerades (node names
// whose they are), and appends to kept a line for each range kept. It returns whether one is masqueraded.
// A file with errors has no config to ask.
func checkPodCIDRs(res *config.CheckResult, node string, pods []netip.Prefix, nftOpts ruleset.Options, kept *[]string) (masqueraded bool) {
	if res.Count(config.SevError) > 0 {
		return false
	}
	if len(pods) == 0 {
		*kept = append(*kept, node+": no pod ranges (spec.podCIDRs is empty): nothing to check")
		return false
	}
	for _, cfg := range res.Configs {
		r := ruleset.Compile(cfg, nftOpts)
		var ok []string
		for _, p := range pods {
			ivs := r.MasqueradedWithin(p)
			if len(ivs) == 0 {
				ok = append(ok, p.String())
				continue
			}
			masqueraded = true
			res.Findings = append(res.Findings, config.Finding{Severity: config.SevWarning,
				Msg: fmt.Sprintf("%s: pod range %s is masqueraded%s: pods on other nodes would reach its pods with their node's address",
					node, p, partly(p, ivs)),
				Fix: "add it to nonMasqueradeCIDRs or clusterCIDRs, or pass it with --cluster-cidr"})
		}
		if len(ok) > 0 {
			*kept = append(*kept, fmt.Sprintf("%s: pod ranges kept non-masquerade: %s", node, strings.Join(ok, ", ")))
		}
	}
	return masqueraded
}

// partly says which part of p the intervals ivs are: "" for all of it.
func partly(p netip.Prefix, ivs []ruleset.Interval) string {
	if len(ivs) == 1 && ivs[0] == ruleset.PrefixInterval(p) {
		return ""
	}
	parts := make([]string, len(ivs))
	for i, iv := range ivs {
		parts[i] = iv.String()
	}
	return " (" + strings.Join(parts, ", ") + " of it)"
}

// stdinName names the standard input in findings (masqd check -).
const stdinName = "<stdin>"

// readCheckFile reads file, or stdin when file is "-".
func readCheckFile(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, config.MaxFileSize+4096))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", stdinName, err)
		}
		return data, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory: check its files one by one", file)
	}
	// A ConfigMap holds at most 1 MiB; read a little more, so that config.Parse can say the file is too large.
	return io.ReadAll(io.LimitReader(f, config.MaxFileSize+4096))
}

// writeCheck prints the findings in line order, a summary, and what the config would do.
// after are lines printed after the summary, before what the config does.
func writeCheck(w io.Writer, r *config.CheckResult, file string, nftOpts ruleset.Options, after ...string) {
	slices.SortStableFunc(r.Findings, func(a, b config.Finding) int { return cmp.Compare(a.Line, b.Line) })
	for _, f := range r.Findings {
		s := fmt.Sprintf("%s: %s: %s", config.Source{File: file, Line: f.Line}.Location(), f.Severity, f.Msg)
		if f.Fix != "" {
			s += "; " + f.Fix
		}
		fmt.Fprintln(w, s)
	}
	if len(r.Repaired) > 0 {
		lines := make([]string, len(r.Repaired))
		for i, l := range r.Repaired {
			lines[i] = strconv.Itoa(l)
		}
		word := "line"
		if len(lines) > 1 {
			word = "lines"
		}
		fmt.Fprintf(w, "%s: note: %s %s read as if fixed, to check the rest of the file\n", file, word, strings.Join(lines, ", "))
	}
	errs := r.Count(config.SevError)
	fmt.Fprintf(w, "%s: %s, %s, %s\n", file, plural(errs, "error"), plural(r.Count(config.SevWarning), "warning"), plural(r.Count(config.SevNote), "note"))
	for _, a := range after {
		fmt.Fprintf(w, "%s: %s\n", file, a)
	}
	if errs > 0 {
		fmt.Fprintln(w, "Not applied as it is: fix the errors, then check again.")
		return
	}
	var notes []string
	for i, cfg := range r.Configs {
		if i == 0 {
			fmt.Fprintln(w, "\nWhat it does (the same as masqd --dry-run):")
		}
		opts, iface, err := resolveHere(cfg, nftOpts)
		fmt.Fprint(w, ruleset.Compile(cfg, opts).String())
		if len(cfg.SNATTo) > 0 || cfg.SNATToInterface.Name != "" {
			local, _ := hostAddrs()
			notes = append(notes, status.SNATWarnings(cfg, local, iface, err)...)
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "%s: note: on this machine: %s\n", file, n)
	}
	if slices.ContainsFunc(r.Configs, func(c config.Config) bool { return c.FlushConntrack }) {
		fmt.Fprintln(w, "\nAfter each commit that flips destinations between masquerade and not, the conntrack entries of flows\n"+
			"from non-local sources to them are deleted (flushConntrack, --flush-conntrack): flows already going\n"+
			"there take the new verdict at once, instead of keeping their translation until they end.")
	}
}

// resolveHere resolves cfg's snatToInterface on this machine, as the agent does on the node.
func resolveHere(cfg config.Config, nopts ruleset.Options) (ruleset.Options, ruleset.InterfaceAddrs, error) {
	name := cfg.SNATToInterface.Name
	if name == "" {
		return nopts, ruleset.InterfaceAddrs{}, nil
	}
	a, err := agent.InterfaceAddrs(name)
	nopts.Interface = a
	return nopts, a, err
}

// hostAddrs are this machine's addresses.
func hostAddrs() ([]netip.Addr, error) { return status.NodeHost().Addrs() }
