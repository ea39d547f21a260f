// Package status compares what the config asks for with what the kernel holds and what the agent says:
// `masqd status`. Read needs CAP_NET_ADMIN to read the kernel's table (through Host); everything else is
// pure, and the report is data (JSON as it is, text in cmd/masqd).
package status

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// Report.Result: the kernel holds what the config asks for (exit status 0), it does not (1), or that cannot
// be told (2: the config is invalid, the kernel cannot be read).
const (
	Match    = "match"
	Mismatch = "mismatch"
	Unknown  = "unknown"
)

// Report is everything `masqd status` says, as --output=json prints it.
type Report struct {
	// Result is "match" (exit 0), "mismatch" (1) or "unknown" (2).
	Result  string `json:"result"`
	Backend string `json:"backend"`
	Table   string `json:"table"`
	// IPTables are the iptables variants whose nat table holds the --masq-chain chain, looked for only when
	// there is no table inet masqd: masqd --mode=iptables (or ip-masq-agent) keeps its rules there.
	IPTables []string    `json:"iptables,omitempty"`
	Config   ConfigState `json:"config"`
	Kernel   KernelState `json:"kernel"`
	// Families compare the config and the kernel; empty when either cannot be read.
	Families []Family `json:"families,omitempty"`
	// RandomFully is the masquerade flag the config asks for (--random-fully) and the one the kernel's rule
	// has; nil without a table.
	RandomFully *RandomFully `json:"randomFully,omitempty"`
	// Sources compares the sources masquerading is restricted to (masqueradeSourceCIDRs); nil when neither
	// the config nor the kernel restricts them.
	Sources *Sources `json:"sources,omitempty"`
	// SNAT compares egressInterfaces and the addresses traffic leaves with (snatTo, snatToInterface); nil
	// when neither the config nor the kernel has them.
	SNAT *SNAT `json:"snat,omitempty"`
	// Diagnosis says what a mismatch most likely means.
	Diagnosis []string `json:"diagnosis,omitempty"`
	Agent     *Agent   `json:"agent,omitempty"`
}

// Sources are the sources sets' intervals of both families, in the config and in the kernel; nil for a
// side that does not restrict the sources.
type Sources struct {
	Config []string `json:"config"`
	Kernel []string `json:"kernel"`
	Match  bool     `json:"match"`
}

// SNAT is egressInterfaces and each family's source address, in the config and in the kernel. Egress
// nil: any interface. To: per family "ipv4 192.0.2.10" or "ipv4 masquerade".
type SNAT struct {
	ConfigEgress []string `json:"configEgress"`
	KernelEgress []string `json:"kernelEgress"`
	ConfigTo     []string `json:"configTo"`
	KernelTo     []string `json:"kernelTo"`
	// Interface is snatToInterface, whose addresses ConfigTo holds as resolved here.
	Interface string `json:"interface,omitempty"`
	Match     bool   `json:"match"`
	// Warnings: a snatTo address that is not one of this host's (replies to it would not come back), an
	// interface that cannot be resolved.
	Warnings []string `json:"warnings,omitempty"`
}

// snatTo is a ruleset's source address of each family, as SNAT words them.
func snatTo(r ruleset.Ruleset) []string {
	word := func(fam string, a netip.Addr) string {
		if !a.IsValid() {
			return fam + " masquerade"
		}
		return fam + " " + a.String()
	}
	out := []string{word("ipv4", r.SNAT4)}
	if r.IPv6 {
		out = append(out, word("ipv6", r.SNAT6))
	}
	return out
}

// SNATWarnings are the problems of cfg's snatTo and snatToInterface on the host whose addresses are local
// (nil: not known) and whose resolution of snatToInterface gave iface (err: could not).
func SNATWarnings(cfg config.Config, local []netip.Addr, iface ruleset.InterfaceAddrs, err error) []string {
	var w []string
	if local != nil {
		for _, a := range cfg.SNATTo {
			if !slices.Contains(local, a.Addr) {
				where := ""
				if a.Source.File != "" {
					where = " (" + a.Source.String() + ")"
				}
				w = append(w, fmt.Sprintf("snatTo %s%s is not an address of this node: replies to it will not come back here; "+
					"give one of the node's addresses, or add it to an interface", a.Addr, where))
			}
		}
	}
	if name := cfg.SNATToInterface.Name; name != "" {
		switch {
		case err != nil:
			w = append(w, fmt.Sprintf("snatToInterface %s cannot be resolved here (%v): its families are masqueraded", name, err))
		case !iface.V4.IsValid():
			w = append(w, fmt.Sprintf("snatToInterface %s has no usable IPv4 address: IPv4 traffic is masqueraded", name))
		case cfg.EnableIPv6 && !iface.V6.IsValid():
			w = append(w, fmt.Sprintf("snatToInterface %s has no usable IPv6 address: IPv6 traffic is masqueraded", name))
		}
	}
	return w
}

type RandomFully struct {
	Config bool `json:"config"`
	Kernel bool `json:"kernel"`
}

type ConfigState struct {
	Path string `json:"path"`
	// Files are the files read; none means the built-in defaults (no file at Path).
	Files    []string `json:"files"`
	Valid    bool     `json:"valid"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// ClusterCIDRs are the pod ranges kept non-masquerade (the key clusterCIDRs and --cluster-cidr), each
	// with where it was given: "100.64.0.0/10 (FILE line 5)", "172.31.0.0/16 (--cluster-cidr)".
	ClusterCIDRs []string `json:"clusterCIDRs,omitempty"`
	// FlushConntrack says whether the config (flushConntrack, or --flush-conntrack) has the conntrack
	// entries of flows to destinations an edit flips deleted after the commit.
	FlushConntrack bool `json:"flushConntrack,omitempty"`
}

type KernelState struct {
	Readable bool     `json:"readable"`
	Error    string   `json:"error,omitempty"`
	Present  bool     `json:"tablePresent"`
	Foreign  []string `json:"foreign,omitempty"`
}

// Family compares one family's set and rule.
type Family struct {
	Family string `json:"family"`
	// ConfigRule and KernelRule say whether there is a masquerade rule for the family (IPv6: --enable-ipv6).
	ConfigRule      bool `json:"configRule"`
	KernelRule      bool `json:"kernelRule"`
	ConfigIntervals int  `json:"configIntervals"`
	KernelIntervals int  `json:"kernelIntervals"`
	// OnlyInConfig and OnlyInKernel are the set elements one side has and the other has not.
	OnlyInConfig []string `json:"onlyInConfig,omitempty"`
	OnlyInKernel []string `json:"onlyInKernel,omitempty"`
	// KernelMasquerades are destinations the config keeps the pod source for and the kernel masquerades;
	// KernelKeeps the reverse. Empty when the sets differ only in how their intervals are split.
	KernelMasquerades []string `json:"kernelMasquerades,omitempty"`
	KernelKeeps       []string `json:"kernelKeeps,omitempty"`
	Match             bool     `json:"match"`
	// Packets and Bytes are the kernel rule's counters: what it masqueraded (a connection's first packet).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Agent is what the agent on --http-address says about itself, from /readyz and /metrics.
type Agent struct {
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Ready     bool   `json:"ready"`
	// NotReady is /readyz's answer when not ready.
	NotReady string `json:"notReady,omitempty"`
	Version  string `json:"version,omitempty"`
	// Backend is the agent's backend: "nftables", "iptables-nft" or "iptables-legacy"; "" when not said.
	Backend string `json:"backend,omitempty"`
	// LastSync is when the agent last saw the kernel holding what it wants; nil for never (or not reported).
	LastSync    *time.Time `json:"lastSync,omitempty"`
	ConfigValid *bool      `json:"configValid,omitempty"`
	// ConfigState is what the agent runs on (masqd_config_state): "valid", "defaults_file_absent",
	// "defaults_configmap_absent", "invalid_rules_kept" or "invalid_nothing_applied"; "" when not said.
	ConfigState  string `json:"configState,omitempty"`
	SyncsOK      *int64 `json:"syncsOK,omitempty"`
	SyncsFailed  *int64 `json:"syncsFailed,omitempty"`
	DriftRepairs *int64 `json:"driftRepairs,omitempty"`
	// ConntrackFlush is whether the agent flushes conntrack entries after commits that flip destinations
	// (masqd_conntrack_flush_enabled); nil when not said. ConntrackDeleted is how many it deleted, both
	// families (masqd_conntrack_deleted_total), and ConntrackFlushErrors its failed flushes.
	ConntrackFlush       *bool  `json:"conntrackFlush,omitempty"`
	ConntrackDeleted     *int64 `json:"conntrackDeleted,omitempty"`
	ConntrackFlushErrors *int64 `json:"conntrackFlushErrors,omitempty"`
	// NodePodCIDRs are this node's pod ranges as the agent checks them (--node-name,
	// masqd_node_pod_cidr_masqueraded): the ones its config keeps non-masquerade, and the ones it masquerades.
	// DiscoveredPodCIDRs is how many pod ranges the agent reads from the Nodes (--discover-pod-cidrs,
	// masqd_discovered_pod_cidrs); nil when it does not discover.
	DiscoveredPodCIDRs      *int64   `json:"discoveredPodCIDRs,omitempty"`
	NodePodCIDRsKept        []string `json:"nodePodCIDRsKept,omitempty"`
	NodePodCIDRsMasqueraded []string `json:"nodePodCIDRsMasqueraded,omitempty"`
}

// Read reads the config, the kernel and the agent, and compares them. The result is match only when the
// kernel's table does what the compiled config does (ruleset.Ruleset.SameRules, as the agent decides).
func Read(path string, cfgOpts config.Options, nftOpts ruleset.Options, addr, chain string, h Host) Report {
	r := Report{Backend: "nftables", Table: "inet " + ruleset.TableName, Result: Unknown}
	r.Config.Path = path
	cfg, warnings, cfgErr := config.Load(path, cfgOpts)
	r.Config.Warnings = config.WarningLines(warnings)
	if cfgErr == nil && h.PodCIDRs != nil { // --discover-pod-cidrs: the Nodes' ranges, as the agent adds them
		pods, err := h.PodCIDRs()
		if err != nil {
			cfgErr = fmt.Errorf("--discover-pod-cidrs: %w", err)
		}
		cfg = config.WithNodePodCIDRs(cfg, pods)
	}
	if cfgErr != nil {
		r.Config.Error = cfgErr.Error()
	} else {
		r.Config.Valid, r.Config.Files = true, cfg.Files
		for _, c := range cfg.ClusterCIDRs {
			r.Config.ClusterCIDRs = append(r.Config.ClusterCIDRs, fmt.Sprintf("%s (%s)", c.Prefix, c.Source))
		}
		r.Config.FlushConntrack = cfg.FlushConntrack
	}
	have, present, kerr := h.Kernel()
	if kerr != nil {
		r.Kernel.Error = kerr.Error() + PrivilegeHint(kerr)
	} else {
		r.Kernel.Readable, r.Kernel.Present, r.Kernel.Foreign = true, present, have.Foreign
		if !present && h.IPTables != nil {
			r.IPTables = h.IPTables(chain)
		}
	}
	if addr != "" {
		r.Agent = askAgent(addr, h)
	}
	if cfgErr != nil || kerr != nil {
		return r
	}
	if a := r.Agent; a != nil && a.Backend != "" && a.Backend != r.Backend {
		// The agent's rules are ip-masq-agent's iptables chain, which this command does not read.
		r.Diagnosis = []string{fmt.Sprintf("the agent on %s uses the %s backend: its rules are in iptables, not in "+
			"table inet %s, so masqd status cannot compare them (iptables -t nat -L shows them)", a.Address, a.Backend, ruleset.TableName)}
		return r
	}

	if len(r.IPTables) > 0 {
		r.Backend = r.IPTables[0]
		r.Diagnosis = []string{fmt.Sprintf("there is no table inet %s, but the nat table of %s holds chain %s: masqd runs "+
			"here with --mode=iptables (or ip-masq-agent does), and masqd status compares only the nftables table "+
			"(%s -t nat -L %s -n -v shows the chain)", ruleset.TableName, strings.Join(r.IPTables, " and "), chain, r.IPTables[0], chain)}
		return r
	}
	var ifErr error
	if name := cfg.SNATToInterface.Name; name != "" {
		nftOpts.Interface = ruleset.InterfaceAddrs{Name: name}
		if h.Interface == nil {
			ifErr = errors.New("not resolved by this command")
		} else {
			nftOpts.Interface, ifErr = h.Interface(name)
		}
	}
	want := ruleset.Compile(cfg, nftOpts)
	masq4, masq6 := have.Masqueraded()
	snatted := func(r ruleset.Ruleset) bool { return len(r.Egress) > 0 || r.SNAT4.IsValid() || r.SNAT6.IsValid() }
	if snatted(want) || cfg.SNATToInterface.Name != "" || len(cfg.SNATTo) > 0 || present && snatted(have) {
		s := &SNAT{ConfigEgress: want.Egress, ConfigTo: snatTo(want), Interface: cfg.SNATToInterface.Name}
		if present {
			s.KernelEgress, s.KernelTo = have.Egress, snatTo(have)
		}
		s.Match = present && slices.Equal(s.ConfigEgress, s.KernelEgress) && slices.Equal(s.ConfigTo, s.KernelTo)
		var local []netip.Addr
		if h.Addrs != nil {
			local, _ = h.Addrs()
		}
		s.Warnings = SNATWarnings(cfg, local, nftOpts.Interface, ifErr)
		r.SNAT = s
	}
	r.Families = []Family{
		compareFamily("ipv4", true, present, want.NonMasq4, have.NonMasq4, masq4),
		compareFamily("ipv6", want.IPv6, present && have.IPv6, want.NonMasq6, have.NonMasq6, masq6),
	}
	if present {
		r.RandomFully = &RandomFully{Config: want.RandomFully, Kernel: have.RandomFully}
	}
	if want.Sources || present && have.Sources {
		s := &Sources{}
		if want.Sources {
			s.Config = intervalStrings(slices.Concat(want.Src4, want.Src6))
		}
		if present && have.Sources {
			s.Kernel = intervalStrings(slices.Concat(have.Src4, have.Src6))
		}
		s.Match = want.Sources == (present && have.Sources) && slices.Equal(s.Config, s.Kernel)
		r.Sources = s
	}
	r.Result = Mismatch
	if present && have.SameRules(want) {
		r.Result = Match
		return r
	}
	r.Diagnosis = diagnose(cfg, cfgOpts, nftOpts, want, have, present, r.Agent)
	if a := r.Agent; a != nil && a.DiscoveredPodCIDRs != nil && h.PodCIDRs == nil {
		r.Diagnosis = append([]string{fmt.Sprintf("the agent keeps %d pod ranges read from the Nodes (--discover-pod-cidrs) "+
			"non-masquerade: give masqd status the same flag to add them to its config", *a.DiscoveredPodCIDRs)}, r.Diagnosis...)
	}
	if s := r.SNAT; s != nil && !s.Match && s.Interface != "" && present {
		r.Diagnosis = append([]string{fmt.Sprintf("snatToInterface %s has %s here, the kernel's rules %s: the agent follows "+
			"the interface's address as it changes; if this stays, the agent is not running, or runs in another network namespace",
			s.Interface, strings.Join(s.ConfigTo, ", "), strings.Join(s.KernelTo, ", "))}, r.Diagnosis...)
	}
	return r
}

func compareFamily(name string, configRule, kernelRule bool, want, have []ruleset.Interval, cnt ruleset.Counter) Family {
	f := Family{
		Family: name, ConfigRule: configRule, KernelRule: kernelRule,
		ConfigIntervals: len(want), KernelIntervals: len(have),
		Packets: cnt.Packets, Bytes: cnt.Bytes,
	}
	if !kernelRule {
		f.KernelIntervals = 0
		have = nil
	}
	onlyKernel, onlyConfig := ruleset.DiffIntervals(have, want)
	f.OnlyInConfig = intervalStrings(onlyConfig)
	f.OnlyInKernel = intervalStrings(onlyKernel)
	if configRule && kernelRule {
		f.KernelMasquerades = intervalStrings(ruleset.Difference(want, have))
		f.KernelKeeps = intervalStrings(ruleset.Difference(have, want))
	}
	f.Match = configRule == kernelRule && len(f.OnlyInConfig) == 0 && len(f.OnlyInKernel) == 0
	return f
}

func intervalStrings(ivs []ruleset.Interval) []string {
	var out []string
	for _, iv := range ivs {
		out = append(out, iv.String())
	}
	return out
}

// diagnose says what a mismatch most likely means, most telling first.
func diagnose(cfg config.Config, cfgOpts config.Options, nftOpts ruleset.Options, want, have ruleset.Ruleset, present bool, agent *Agent) []string {
	if !present {
		return []string{"there is no table inet masqd: masqd has applied nothing in this network namespace " +
			"(no agent runs here, it never applied, or masqd --cleanup removed it), so masqd masquerades nothing"}
	}
	var out []string
	linkLocal4 := ruleset.PrefixInterval(netip.MustParsePrefix(ruleset.LinkLocal4))
	onlyLinkLocal := func(ivs []ruleset.Interval) bool {
		for _, iv := range ivs {
			if !linkLocal4.Contains(iv.First()) || !linkLocal4.Contains(iv.Last()) {
				return false
			}
		}
		return true
	}
	defaults := ruleset.Compile(config.Default(cfgOpts), nftOpts)
	switch {
	case onlyLinkLocal(have.NonMasq4) && !onlyLinkLocal(want.NonMasq4):
		out = append(out, "the kernel's set nonmasq4 holds none of the config's non-masquerade ranges, so every "+
			"destination but local and link-local ones is masqueraded: the config is not applied (ip-masq-agent's "+
			"version of this is a chain holding only the MASQUERADE rule, with no RETURN rules)")
	case have.SameRules(defaults) && len(cfg.Files) > 0:
		out = append(out, "the kernel holds masqd's built-in defaults, not this config: the agent did not read it "+
			"(another --config? a ConfigMap not created, not named ip-masq-agent, not in kube-system, or without "+
			"the key config? try masqd check on the manifest)")
	}
	switch {
	case want.IPv6 && !have.IPv6:
		out = append(out, "the config has IPv6 (--enable-ipv6, or enableIPv6: true) and the kernel has no IPv6 rule: "+
			"the agent runs without IPv6, or has not applied this config")
	case !want.IPv6 && have.IPv6:
		out = append(out, "the kernel has an IPv6 rule and this command's config has none: give masqd status the "+
			"agent's flags (--enable-ipv6)")
	}
	if want.RandomFully != have.RandomFully {
		out = append(out, fmt.Sprintf("the kernel's rule says %q and this command assumed --random-fully=%t: "+
			"give masqd status the agent's flags", MasqueradeWords(have.RandomFully), want.RandomFully))
	}
	if !slices.Equal(want.ToPorts, have.ToPorts) {
		out = append(out, fmt.Sprintf("the kernel's rules masquerade TCP, UDP and SCTP to %s and this command "+
			"assumed %s: give masqd status the agent's flags (--to-ports)", PortsWords(have.ToPorts), PortsWords(want.ToPorts)))
	}
	if len(have.Foreign) > 0 {
		out = append(out, "table inet masqd holds what masqd does not write (listed under foreign): a running "+
			"agent removes it at once; otherwise masqd --once does")
	}
	switch {
	case agent == nil || !agent.Reachable:
		out = append(out, "a running agent repairs any change to its table at once: if this stays, no agent "+
			"is keeping this table")
	case agent.Ready:
		out = append(out, fmt.Sprintf("the agent on %s is ready, so the kernel holds what it wants: it reads "+
			"another config, or runs with other flags, than this command", agent.Address))
	default:
		out = append(out, fmt.Sprintf("the agent on %s is not ready: its log says why", agent.Address))
	}
	return out
}

func MasqueradeWords(randomFully bool) string {
	if randomFully {
		return "masquerade random,fully-random"
	}
	return "masquerade"
}

// askAgent reads the agent's /readyz and /metrics.
func askAgent(addr string, h Host) *Agent {
	a := &Agent{Address: addr}
	base := "http://" + addr
	code, body, err := h.Get(base + "/readyz")
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.Reachable = true
	a.Ready = code == 200
	if !a.Ready {
		a.NotReady = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
	}
	code, body, err = h.Get(base + "/metrics")
	if err != nil || code != 200 {
		if err == nil {
			err = fmt.Errorf("GET /metrics: %d", code)
		}
		a.Error = err.Error()
		return a
	}
	m, err := ParseMetrics(body)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	if v, ok := m.Value("masqd_last_sync_success_timestamp_seconds"); ok && v > 0 {
		sec, frac := math.Modf(v)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC().Truncate(time.Millisecond)
		a.LastSync = &t
	}
	if v, ok := m.Value("masqd_config_valid"); ok {
		valid := v == 1
		a.ConfigValid = &valid
	}
	for _, s := range m.Samples("masqd_config_state") { // the state whose gauge is 1
		if v, _ := sampleValue(s); v != 1 {
			continue
		}
		for _, l := range s.Label {
			if l.GetName() == "state" {
				a.ConfigState = l.GetValue()
			}
		}
	}
	count := func(name string, labels ...string) *int64 {
		if v, ok := m.Value(name, labels...); ok {
			n := int64(v)
			return &n
		}
		return nil
	}
	a.SyncsOK = count("masqd_sync_total", "result", "success")
	a.SyncsFailed = count("masqd_sync_total", "result", "error")
	a.DriftRepairs = count("masqd_drift_repairs_total")
	a.DiscoveredPodCIDRs = count("masqd_discovered_pod_cidrs")
	if v, ok := m.Value("masqd_conntrack_flush_enabled"); ok {
		on := v == 1
		a.ConntrackFlush = &on
		v4, v6 := count("masqd_conntrack_deleted_total", "family", "ipv4"), count("masqd_conntrack_deleted_total", "family", "ipv6")
		if v4 != nil || v6 != nil {
			n := int64(0)
			for _, c := range []*int64{v4, v6} {
				if c != nil {
					n += *c
				}
			}
			a.ConntrackDeleted = &n
		}
		a.ConntrackFlushErrors = count("masqd_conntrack_flushes_total", "result", "error")
	}
	a.Version = m.Label("masqd_build_info", "version")
	a.Backend = m.Label("masqd_build_info", "backend")
	for _, s := range m.Samples("masqd_node_pod_cidr_masqueraded") {
		v, _ := sampleValue(s)
		for _, l := range s.Label {
			if l.GetName() != "cidr" {
				continue
			}
			if v == 1 {
				a.NodePodCIDRsMasqueraded = append(a.NodePodCIDRsMasqueraded, l.GetValue())
			} else {
				a.NodePodCIDRsKept = append(a.NodePodCIDRsKept, l.GetValue())
			}
		}
	}
	return a
}

// PortsWords says --to-ports' ranges: "ports 1024-29999,32768-65535", or "any port" for none.
func PortsWords(ports []ruleset.PortRange) string {
	if len(ports) == 0 {
		return "any port"
	}
	words := make([]string, len(ports))
	for i, p := range ports {
		words[i] = p.String()
	}
	return "ports " + strings.Join(words, ",")
}
