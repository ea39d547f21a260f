package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/nft"
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
func statusMain(args []string, stdout, stderr io.Writer, h host) int {
	var (
		path    string
		cfgOpts config.Options
		nftOpts nft.Options
		output  string
		addr    string
		chain   string
	)
	fs := newFlagSet("masqd status")
	addConfigFlags(fs, &path, &cfgOpts, &nftOpts)
	fs.StringVar(&output, "output", "text", "output `format`: text or json")
	fs.StringVar(&chain, "masq-chain", nft.DefaultIPTablesChain, "the agent's iptables `chain`, looked for when there is no table inet masqd (--mode=iptables)")
	fs.StringVar(&addr, "http-address", "127.0.0.1:9745", "`address` of the agent's HTTP endpoints (its --http-address); empty to not ask")
	operands, err := parseCommand(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, statusUsage)
		return 0
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "masqd status: %v\n", err)
		return 2
	case output != "text" && output != "json":
		fmt.Fprintf(stderr, "masqd status: --output=%q: want text or json\n", output)
		return 2
	case len(operands) > 0:
		fmt.Fprintf(stderr, "masqd status: unexpected argument %q (status takes only flags)\n", operands[0])
		return 2
	}

	r := newStatus(path, cfgOpts, nftOpts, addr, chain, h)
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "masqd status: %v\n", err)
			return 2
		}
	} else {
		r.writeText(stdout, h.now())
	}
	switch r.Result {
	case resultMatch:
		return 0
	case resultMismatch:
		return 1
	}
	return 2
}

const (
	resultMatch    = "match"
	resultMismatch = "mismatch"
	resultUnknown  = "unknown"
)

// statusReport is everything `masqd status` says, as --output=json prints it.
type statusReport struct {
	// Result is "match" (exit 0), "mismatch" (1) or "unknown" (2).
	Result  string `json:"result"`
	Backend string `json:"backend"`
	Table   string `json:"table"`
	// IPTables are the iptables variants whose nat table holds the --masq-chain chain, looked for only when
	// there is no table inet masqd: masqd --mode=iptables (or ip-masq-agent) keeps its rules there.
	IPTables []string     `json:"iptables,omitempty"`
	Config   statusConfig `json:"config"`
	Kernel   statusKernel `json:"kernel"`
	// Families compare the config and the kernel; empty when either cannot be read.
	Families []statusFamily `json:"families,omitempty"`
	// RandomFully is the masquerade flag the config asks for (--random-fully) and the one the kernel's rule
	// has; nil without a table.
	RandomFully *statusRandomFully `json:"randomFully,omitempty"`
	// Diagnosis says what a mismatch most likely means.
	Diagnosis []string     `json:"diagnosis,omitempty"`
	Agent     *statusAgent `json:"agent,omitempty"`
}

type statusRandomFully struct {
	Config bool `json:"config"`
	Kernel bool `json:"kernel"`
}

type statusConfig struct {
	Path string `json:"path"`
	// Files are the files read; none means the built-in defaults (no file at Path).
	Files    []string `json:"files"`
	Valid    bool     `json:"valid"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

type statusKernel struct {
	Readable bool     `json:"readable"`
	Error    string   `json:"error,omitempty"`
	Present  bool     `json:"tablePresent"`
	Foreign  []string `json:"foreign,omitempty"`
}

// statusFamily compares one family's set and rule.
type statusFamily struct {
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

// statusAgent is what the agent on --http-address says about itself, from /readyz and /metrics.
type statusAgent struct {
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
	LastSync     *time.Time `json:"lastSync,omitempty"`
	ConfigValid  *bool      `json:"configValid,omitempty"`
	SyncsOK      *int64     `json:"syncsOK,omitempty"`
	SyncsFailed  *int64     `json:"syncsFailed,omitempty"`
	DriftRepairs *int64     `json:"driftRepairs,omitempty"`
}

// newStatus reads the config, the kernel and the agent, and compares them. The result is match only when the
// kernel's table does what the compiled config does (nft.Ruleset.SameRules, as the agent decides).
func newStatus(path string, cfgOpts config.Options, nftOpts nft.Options, addr, chain string, h host) statusReport {
	r := statusReport{Backend: "nftables", Table: "inet " + nft.TableName, Result: resultUnknown}
	r.Config.Path = path
	cfg, warnings, cfgErr := config.Load(path, cfgOpts)
	r.Config.Warnings = warningLines(warnings)
	if cfgErr != nil {
		r.Config.Error = cfgErr.Error()
	} else {
		r.Config.Valid, r.Config.Files = true, cfg.Files
	}
	have, present, kerr := h.kernel()
	if kerr != nil {
		r.Kernel.Error = kerr.Error() + privilegeHint(kerr)
	} else {
		r.Kernel.Readable, r.Kernel.Present, r.Kernel.Foreign = true, present, have.Foreign
		if !present && h.iptables != nil {
			r.IPTables = h.iptables(chain)
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
			"table inet %s, so masqd status cannot compare them (iptables -t nat -L shows them)", a.Address, a.Backend, nft.TableName)}
		return r
	}

	if len(r.IPTables) > 0 {
		r.Backend = r.IPTables[0]
		r.Diagnosis = []string{fmt.Sprintf("there is no table inet %s, but the nat table of %s holds chain %s: masqd runs "+
			"here with --mode=iptables (or ip-masq-agent does), and masqd status compares only the nftables table "+
			"(%s -t nat -L %s -n -v shows the chain)", nft.TableName, strings.Join(r.IPTables, " and "), chain, r.IPTables[0], chain)}
		return r
	}
	want := nft.Compile(cfg, nftOpts)
	masq4, masq6 := have.Masqueraded()
	r.Families = []statusFamily{
		compareFamily("ipv4", true, present, want.NonMasq4, have.NonMasq4, masq4),
		compareFamily("ipv6", want.IPv6, present && have.IPv6, want.NonMasq6, have.NonMasq6, masq6),
	}
	if present {
		r.RandomFully = &statusRandomFully{Config: want.RandomFully, Kernel: have.RandomFully}
	}
	r.Result = resultMismatch
	if present && have.SameRules(want) {
		r.Result = resultMatch
		return r
	}
	r.Diagnosis = diagnose(cfg, cfgOpts, nftOpts, want, have, present, r.Agent)
	return r
}

func compareFamily(name string, configRule, kernelRule bool, want, have []nft.Interval, cnt nft.Counter) statusFamily {
	f := statusFamily{
		Family: name, ConfigRule: configRule, KernelRule: kernelRule,
		ConfigIntervals: len(want), KernelIntervals: len(have),
		Packets: cnt.Packets, Bytes: cnt.Bytes,
	}
	if !kernelRule {
		f.KernelIntervals = 0
		have = nil
	}
	onlyKernel, onlyConfig := nft.DiffIntervals(have, want)
	f.OnlyInConfig = intervalStrings(onlyConfig)
	f.OnlyInKernel = intervalStrings(onlyKernel)
	if configRule && kernelRule {
		f.KernelMasquerades = intervalStrings(nft.Difference(want, have))
		f.KernelKeeps = intervalStrings(nft.Difference(have, want))
	}
	f.Match = configRule == kernelRule && len(f.OnlyInConfig) == 0 && len(f.OnlyInKernel) == 0
	return f
}

func intervalStrings(ivs []nft.Interval) []string {
	var out []string
	for _, iv := range ivs {
		out = append(out, iv.String())
	}
	return out
}

var linkLocal4 = nft.PrefixInterval(netip.MustParsePrefix("169.254.0.0/16"))

// diagnose says what a mismatch most likely means, most telling first.
func diagnose(cfg config.Config, cfgOpts config.Options, nftOpts nft.Options, want, have nft.Ruleset, present bool, agent *statusAgent) []string {
	if !present {
		return []string{"there is no table inet masqd: masqd has applied nothing in this network namespace " +
			"(no agent runs here, it never applied, or masqd --cleanup removed it), so masqd masquerades nothing"}
	}
	var out []string
	onlyLinkLocal := func(ivs []nft.Interval) bool {
		for _, iv := range ivs {
			if !linkLocal4.Contains(iv.First()) || !linkLocal4.Contains(iv.Last()) {
				return false
			}
		}
		return true
	}
	defaults := nft.Compile(config.Default(cfgOpts), nftOpts)
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
			"give masqd status the agent's flags", masqueradeWords(have.RandomFully), want.RandomFully))
	}
	if !slices.Equal(want.ToPorts, have.ToPorts) {
		out = append(out, fmt.Sprintf("the kernel's rules masquerade TCP, UDP and SCTP to %s and this command "+
			"assumed %s: give masqd status the agent's flags (--to-ports)", portsWords(have.ToPorts), portsWords(want.ToPorts)))
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

func masqueradeWords(randomFully bool) string {
	if randomFully {
		return "masquerade random,fully-random"
	}
	return "masquerade"
}

// askAgent reads the agent's /readyz and /metrics.
func askAgent(addr string, h host) *statusAgent {
	a := &statusAgent{Address: addr}
	base := "http://" + addr
	code, body, err := h.get(base + "/readyz")
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.Reachable = true
	a.Ready = code == 200
	if !a.Ready {
		a.NotReady = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
	}
	code, body, err = h.get(base + "/metrics")
	if err != nil || code != 200 {
		if err == nil {
			err = fmt.Errorf("GET /metrics: %d", code)
		}
		a.Error = err.Error()
		return a
	}
	m, err := parseMetrics(body)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	if v, ok := m.value("masqd_last_sync_success_timestamp_seconds"); ok && v > 0 {
		sec, frac := math.Modf(v)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC().Truncate(time.Millisecond)
		a.LastSync = &t
	}
	if v, ok := m.value("masqd_config_valid"); ok {
		valid := v == 1
		a.ConfigValid = &valid
	}
	count := func(name string, labels ...string) *int64 {
		if v, ok := m.value(name, labels...); ok {
			n := int64(v)
			return &n
		}
		return nil
	}
	a.SyncsOK = count("masqd_sync_total", "result", "success")
	a.SyncsFailed = count("masqd_sync_total", "result", "error")
	a.DriftRepairs = count("masqd_drift_repairs_total")
	a.Version = m.label("masqd_build_info", "version")
	a.Backend = m.label("masqd_build_info", "backend")
	return a
}

// metrics are the metric families of a Prometheus text exposition, by name.
type metrics map[string]*dto.MetricFamily

// parseMetrics parses an agent's /metrics (the Prometheus text format).
func parseMetrics(body []byte) (metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	return m, nil
}

// value returns the value of the sample of name whose labels include labels (name, value, name, value, …),
// for a gauge, a counter or an untyped sample.
func (m metrics) value(name string, labels ...string) (float64, bool) {
	for _, s := range m.samples(name, labels...) {
		switch {
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Untyped != nil:
			return s.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// label returns the value of label key on the first sample of name, or "".
func (m metrics) label(name, key string) string {
	for _, s := range m.samples(name) {
		for _, l := range s.Label {
			if l.GetName() == key {
				return l.GetValue()
			}
		}
	}
	return ""
}

// samples returns the samples of name whose labels include labels (name, value, …).
func (m metrics) samples(name string, labels ...string) []*dto.Metric {
	f, ok := m[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, s := range f.Metric {
		have := map[string]string{}
		for _, l := range s.Label {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
				match = false
			}
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

// writeText prints the report for people; now dates the agent's last sync.
func (r statusReport) writeText(w io.Writer, now time.Time) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-10s%s\n", label, fmt.Sprintf(format, a...))
	}
	more := func(format string, a ...any) { line("", format, a...) }

	switch r.Result {
	case resultMatch:
		fmt.Fprintln(w, "masqd status: match: the kernel holds the config")
	case resultMismatch:
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
	if rf := r.RandomFully; rf != nil {
		if rf.Config == rf.Kernel {
			line("rule:", "%s in the config and the kernel: match", masqueradeWords(rf.Config))
		} else {
			line("rule:", "%s in the config, %s in the kernel: DIFFER", masqueradeWords(rf.Config), masqueradeWords(rf.Kernel))
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
		a.writeText(line, now)
	}
	for i, d := range r.Diagnosis {
		label := ""
		if i == 0 {
			label = "why:"
		}
		line(label, "%s", d)
	}
}

func (a *statusAgent) writeText(line func(label, format string, a ...any), now time.Time) {
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
	if a.ConfigValid != nil {
		if *a.ConfigValid {
			parts = append(parts, "config valid")
		} else {
			parts = append(parts, "config REJECTED (it keeps the last good rules)")
		}
	}
	if a.SyncsOK != nil && a.SyncsFailed != nil {
		parts = append(parts, fmt.Sprintf("syncs: %d ok, %d failed", *a.SyncsOK, *a.SyncsFailed))
	}
	if a.DriftRepairs != nil {
		parts = append(parts, fmt.Sprintf("drift repairs: %d", *a.DriftRepairs))
	}
	if a.Error != "" {
		parts = append(parts, "metrics: "+a.Error)
	}
	line("agent:", "%s: %s", name, strings.Join(parts, "; "))
	if !a.Ready || (a.ConfigValid != nil && !*a.ConfigValid) {
		line("", "the last error is in the agent's log (kubectl logs -n kube-system POD, or journalctl -u masqd)")
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

// portsWords says --to-ports' ranges: "ports 1024-29999,32768-65535", or "any port" for none.
func portsWords(ports []nft.PortRange) string {
	if len(ports) == 0 {
		return "any port"
	}
	words := make([]string, len(ports))
	for i, p := range ports {
		words[i] = p.String()
	}
	return "ports " + strings.Join(words, ",")
}
