package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// Metrics are the agent's Prometheus metrics. Create them with NewMetrics on a registry made by the caller.
// The agent's loop is the only writer of the unexported state; the exported metrics are safe for concurrent
// use, as every Prometheus metric is.
type Metrics struct {
	Syncs        *prometheus.CounterVec
	SyncDuration prometheus.Histogram
	LastSuccess  prometheus.Gauge
	ConfigValid  prometheus.Gauge
	// ConfigState is 1 for the agent's ConfigState and 0 for the others: whether it runs a config, the
	// defaults because none is there, or rejects the config with or without rules in force.
	ConfigState *prometheus.GaugeVec
	// Ready is /readyz as a number: 1 while the kernel holds the desired ruleset, 0 before the first apply and
	// after a failed one.
	Ready         prometheus.Gauge
	ConfigReloads prometheus.Counter
	DriftRepairs  prometheus.Counter
	// Intervals counts the elements of the desired non-masquerade sets, by family: adjacent and overlapping
	// prefixes of the config merge into one interval, and masqueradeCIDRs split them.
	Intervals *prometheus.GaugeVec
	// CIDRs counts the prefixes written in the config, by key (nonMasqueradeCIDRs, masqueradeCIDRs), to
	// compare with cidrLimit.
	CIDRs *prometheus.GaugeVec
	// ConfigInfo is 1 for the hash of the ruleset the kernel was last made to hold (ConfigHash), and absent
	// before the first successful apply.
	ConfigInfo *prometheus.GaugeVec
	// BuildInfo is set by the caller; its labels are version, revision, modified, goversion and backend, in
	// that order.
	BuildInfo *prometheus.GaugeVec
	// NodePodCIDRMasqueraded has one series per pod range of this node (--node-name): 1 when the config
	// masquerades traffic to some of it, 0 when it keeps all of it non-masquerade. No series without
	// --node-name.
	NodePodCIDRMasqueraded *prometheus.GaugeVec
	// DiscoveredPodCIDRs counts the pod ranges read from the Nodes (--discover-pod-cidrs), before those the
	// config already has are left out. Registered only by RegisterDiscovery.
	DiscoveredPodCIDRs prometheus.Gauge
	// SNATInterface says, by family, whether traffic leaves with snatToInterface's address (1) or falls back
	// to masquerade because the interface has no usable address of that family or is not there (0); no
	// series without snatToInterface.
	SNATInterface *prometheus.GaugeVec
	// ConntrackFlush is 1 while the conntrack flush is on (flushConntrack or --flush-conntrack), else 0.
	ConntrackFlush prometheus.Gauge
	// ConntrackDeleted counts the conntrack entries deleted after commits that flipped destinations, by
	// family; ConntrackFlushes counts those flushes, by result.
	ConntrackDeleted *prometheus.CounterVec
	ConntrackFlushes *prometheus.CounterVec

	ipv6        atomic.Bool    // the desired ruleset has IPv6: the counters have an ipv6 series
	appliedHash string         // ConfigInfo's label
	nodePods    []netip.Prefix // NodePodCIDRMasqueraded's labels
}

// Counters reads the masquerade rules' counters: a Backend, or an *nft.Conn.
type Counters interface {
	Counters() (v4, v6 ruleset.Counter, err error)
}

// NewMetrics registers the agent's metrics on reg. The masqueraded packet and byte counters are read from
// the kernel's rule counters through c at scrape time.
func NewMetrics(reg prometheus.Registerer, c Counters) *Metrics {
	m := &Metrics{
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masqd_sync_total", Help: "Applies of the desired ruleset to the kernel, by result.",
		}, []string{"result"}),
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "masqd_sync_duration_seconds", Help: "Time to compare and apply the ruleset.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_last_sync_success_timestamp_seconds", Help: "When the kernel was last seen holding the desired ruleset.",
		}),
		ConfigValid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_config_valid", Help: "1 when the last config read was valid, 0 when it was rejected (the previous rules stay).",
		}),
		ConfigState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_config_state", Help: "1 for what the agent runs on, 0 for the rest: valid (a config), defaults_file_absent, defaults_configmap_absent (the built-in defaults: nothing to read), invalid_rules_kept (rejected; the rules in force stay), invalid_nothing_applied (rejected on a node where masqd holds no rules: nothing is masqueraded by masqd).",
		}, []string{"state"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_ready", Help: "1 while the kernel holds the desired ruleset (/readyz answers 200), 0 before the first apply and after a failed one.",
		}),
		ConfigReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "masqd_config_reloads_total", Help: "Config reads.",
		}),
		DriftRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "masqd_drift_repairs_total", Help: "Repairs of masqd's table after something else changed it.",
		}),
		Intervals: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_nonmasquerade_intervals", Help: "Elements (address intervals) of the desired non-masquerade set, by family; no ipv6 series without IPv6.",
		}, []string{"family"}),
		CIDRs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_config_cidrs", Help: "CIDRs written in the last valid config, by key (nonMasqueradeCIDRs, masqueradeCIDRs, masqueradeSourceCIDRs; clusterCIDRs with --cluster-cidr's).",
		}, []string{"key"}),
		ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_config_info", Help: "Always 1; hash identifies the ruleset the kernel was last made to hold: nodes with the same hash masquerade the same destinations the same way.",
		}, []string{"hash"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_build_info", Help: "Always 1; the labels say which build of masqd runs and the backend in use.",
		}, []string{"version", "revision", "modified", "goversion", "backend"}),
		DiscoveredPodCIDRs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_discovered_pod_cidrs", Help: "Pod ranges read from the Nodes' spec.podCIDRs (--discover-pod-cidrs), kept non-masquerade with the config's.",
		}),
		NodePodCIDRMasqueraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_node_pod_cidr_masqueraded", Help: "One series per pod range of this node (--node-name, the Node's spec.podCIDRs): 1 when the config masquerades traffic to some of it (pods on other nodes reach its pods with their node's address), 0 when it is kept non-masquerade.",
		}, []string{"cidr"}),
		SNATInterface: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_snat_interface_resolved", Help: "By family, 1 while traffic leaves with snatToInterface's address, 0 while it falls back to masquerade (the interface has no usable address of the family, or is not there); no series without snatToInterface.",
		}, []string{"family"}),
		ConntrackFlush: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_conntrack_flush_enabled", Help: "1 while flows whose destination an edit flips have their conntrack entries deleted after the commit (flushConntrack, --flush-conntrack), else 0.",
		}),
		ConntrackDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masqd_conntrack_deleted_total", Help: "Conntrack entries deleted after commits that flipped destinations between masquerade and not, by family.",
		}, []string{"family"}),
		ConntrackFlushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masqd_conntrack_flushes_total", Help: "Conntrack flushes after commits that flipped destinations, by result; an error leaves the commit in force.",
		}, []string{"result"}),
	}
	m.CIDRs.WithLabelValues("nonMasqueradeCIDRs")
	m.CIDRs.WithLabelValues("masqueradeCIDRs")
	m.CIDRs.WithLabelValues("clusterCIDRs")
	m.CIDRs.WithLabelValues("masqueradeSourceCIDRs")
	reg.MustRegister(m.Syncs, m.SyncDuration, m.LastSuccess, m.ConfigValid, m.ConfigState, m.Ready, m.ConfigReloads, m.DriftRepairs,
		m.Intervals, m.CIDRs, m.ConfigInfo, m.BuildInfo, m.SNATInterface, m.NodePodCIDRMasqueraded, newCounterCollector(c, &m.ipv6),
		m.ConntrackFlush, m.ConntrackDeleted, m.ConntrackFlushes)
	for _, r := range []string{"success", "error"} {
		m.Syncs.WithLabelValues(r)
		m.ConntrackFlushes.WithLabelValues(r)
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		m.ConntrackDeleted.WithLabelValues(f)
	}
	for _, st := range ConfigStates() {
		m.ConfigState.WithLabelValues(string(st))
	}
	return m
}

// SetState makes s the one ConfigState at 1.
func (m *Metrics) SetState(s ConfigState) {
	for _, st := range ConfigStates() {
		v := 0.0
		if st == s {
			v = 1
		}
		m.ConfigState.WithLabelValues(string(st)).Set(v)
	}
}

// SetDesired exports what a valid config asks for: the intervals of the ruleset r compiled from cfg, and
// the CIDRs cfg writes. The ipv6 series exist only while r has IPv6.
func (m *Metrics) SetDesired(cfg config.Config, r ruleset.Ruleset) {
	m.CIDRs.WithLabelValues("nonMasqueradeCIDRs").Set(float64(len(cfg.NonMasqueradeCIDRs)))
	m.CIDRs.WithLabelValues("masqueradeCIDRs").Set(float64(len(cfg.MasqueradeCIDRs)))
	m.CIDRs.WithLabelValues("clusterCIDRs").Set(float64(len(cfg.ClusterCIDRs)))
	m.CIDRs.WithLabelValues("masqueradeSourceCIDRs").Set(float64(len(cfg.MasqueradeSourceCIDRs)))
	m.Intervals.WithLabelValues("ipv4").Set(float64(len(r.NonMasq4)))
	m.ipv6.Store(r.IPv6)
	if r.IPv6 {
		m.Intervals.WithLabelValues("ipv6").Set(float64(len(r.NonMasq6)))
	} else {
		m.Intervals.DeleteLabelValues("ipv6")
	}
}

// RegisterDiscovery registers masqd_discovered_pod_cidrs on reg: only an agent with --discover-pod-cidrs has it.
func (m *Metrics) RegisterDiscovery(reg prometheus.Registerer) {
	reg.MustRegister(m.DiscoveredPodCIDRs)
}

// SetNodePodCIDRs exports the node's pod ranges pods, 1 for the masqueraded ones, 0 for the others.
func (m *Metrics) SetNodePodCIDRs(pods, masqueraded []netip.Prefix) {
	if !slices.Equal(pods, m.nodePods) { // the series of ranges the node no longer has go
		m.NodePodCIDRMasqueraded.Reset()
		m.nodePods = slices.Clone(pods)
	}
	for _, p := range pods {
		v := 0.0
		if slices.Contains(masqueraded, p) {
			v = 1
		}
		m.NodePodCIDRMasqueraded.WithLabelValues(p.String()).Set(v)
	}
}

// SetSNATInterface exports whether each family uses snatToInterface's resolved address a; on false no
// series at all (the config has no snatToInterface).
func (m *Metrics) SetSNATInterface(a ruleset.InterfaceAddrs, ipv6 bool) {
	if a.Name == "" {
		m.SNATInterface.Reset()
		return
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	m.SNATInterface.WithLabelValues("ipv4").Set(b(a.V4.IsValid()))
	if ipv6 {
		m.SNATInterface.WithLabelValues("ipv6").Set(b(a.V6.IsValid()))
	} else {
		m.SNATInterface.DeleteLabelValues("ipv6")
	}
}

// SetApplied exports hash (ConfigHash of the ruleset the kernel now holds) as masqd_config_info's only series.
func (m *Metrics) SetApplied(hash string) {
	if hash == m.appliedHash {
		return
	}
	m.ConfigInfo.Reset()
	m.ConfigInfo.WithLabelValues(hash).Set(1)
	m.appliedHash = hash
}

// ConfigHash is a short stable hash of what r tells the kernel: its sets, IPv6, and how it masquerades
// (random-fully, --to-ports); counters aside. Equal rulesets have equal hashes on every node, architecture
// and masqd version that compiles them alike. It is 12 hex digits of a SHA-256, and costs about a
// millisecond at 100,000 intervals.
func ConfigHash(r ruleset.Ruleset) string {
	h := sha256.New()
	var buf [8]byte
	flag := func(b bool) {
		if b {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
	}
	flag(r.IPv6)
	flag(r.RandomFully)
	binary.BigEndian.PutUint64(buf[:], uint64(len(r.ToPorts)))
	h.Write(buf[:])
	for _, p := range r.ToPorts {
		binary.BigEndian.PutUint16(buf[:2], p.First)
		binary.BigEndian.PutUint16(buf[2:4], p.Last)
		h.Write(buf[:4])
	}
	sets := [][]ruleset.Interval{r.NonMasq4, r.NonMasq6}
	if r.Sources { // written only then, so that a config without masqueradeSourceCIDRs keeps its hash
		h.Write([]byte("sources"))
		sets = append(sets, r.Src4, r.Src6)
	}
	if len(r.Egress) > 0 { // as sources: only then
		h.Write([]byte("egress"))
		for _, n := range r.Egress {
			h.Write([]byte(n + "\x00"))
		}
	}
	if r.SNAT4.IsValid() || r.SNAT6.IsValid() {
		h.Write([]byte("snat"))
		for _, a := range []netip.Addr{r.SNAT4, r.SNAT6} {
			b := a.As16()
			flag(a.IsValid())
			h.Write(b[:])
		}
	}
	for _, set := range sets {
		binary.BigEndian.PutUint64(buf[:], uint64(len(set)))
		h.Write(buf[:])
		for _, iv := range set {
			first, last := iv.First().As16(), iv.Last().As16()
			h.Write(first[:])
			h.Write(last[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// counterCollector reads the masquerade rules' counters when scraped; the ipv6 series only while ipv6 is
// set.
type counterCollector struct {
	conn          Counters
	ipv6          *atomic.Bool
	packets, byts *prometheus.Desc
}

func newCounterCollector(conn Counters, ipv6 *atomic.Bool) counterCollector {
	return counterCollector{
		conn: conn,
		ipv6: ipv6,
		packets: prometheus.NewDesc("masqd_masqueraded_packets_total",
			"Packets masqueraded, by family (only a connection's first packet passes the NAT rule).", []string{"family"}, nil),
		byts: prometheus.NewDesc("masqd_masqueraded_bytes_total",
			"Bytes of the packets counted by masqd_masqueraded_packets_total, by family.", []string{"family"}, nil),
	}
}

func (c counterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.byts
}

func (c counterCollector) Collect(ch chan<- prometheus.Metric) {
	v4, v6, err := c.conn.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.packets, err)
		return
	}
	families := map[string]ruleset.Counter{"ipv4": v4}
	if c.ipv6.Load() {
		families["ipv6"] = v6
	}
	for fam, cnt := range families {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(cnt.Packets), fam)
		ch <- prometheus.MustNewConstMetric(c.byts, prometheus.CounterValue, float64(cnt.Bytes), fam)
	}
}

// SetConntrackFlush sets masqd_conntrack_flush_enabled.
func (m *Metrics) SetConntrackFlush(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.ConntrackFlush.Set(v)
}
