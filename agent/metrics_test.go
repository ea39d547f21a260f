package agent

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// countersOf is a Counters with fixed counts.
type countersOf struct{ v4, v6 ruleset.Counter }

func (c countersOf) Counters() (v4, v6 ruleset.Counter, err error) { return c.v4, c.v6, nil }

func parseConfig(t *testing.T, text string, opts config.Options) config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test", []byte(text), opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMetricsFamilies: intervals and CIDRs are exported under their own names; without IPv6 there is no
// ipv6 series at all (neither intervals nor counters), and turning IPv6 off removes it.
func TestMetricsFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, countersOf{v4: ruleset.Counter{Packets: 3, Bytes: 180}, v6: ruleset.Counter{Packets: 5, Bytes: 400}})
	names := []string{"masqd_nonmasquerade_intervals", "masqd_config_cidrs", "masqd_masqueraded_packets_total"}

	// 10.0.0.0/8 and 10.1.0.0/16 are one interval; with link-local, two. 10.2.0.0/16 masqueraded splits 10/8.
	v4only := parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8, 10.1.0.0/16]\nmasqueradeCIDRs: [10.2.0.0/16]\n", config.Options{})
	m.SetDesired(v4only, ruleset.Compile(v4only, ruleset.Options{}))
	want := `# HELP masqd_config_cidrs CIDRs written in the last valid config, by key (nonMasqueradeCIDRs, masqueradeCIDRs, masqueradeSourceCIDRs; clusterCIDRs with --cluster-cidr's).
# TYPE masqd_config_cidrs gauge
masqd_config_cidrs{key="clusterCIDRs"} 0
masqd_config_cidrs{key="masqueradeCIDRs"} 1
masqd_config_cidrs{key="masqueradeSourceCIDRs"} 0
masqd_config_cidrs{key="nonMasqueradeCIDRs"} 2
# HELP masqd_masqueraded_packets_total Packets masqueraded, by family (only a connection's first packet passes the NAT rule).
# TYPE masqd_masqueraded_packets_total counter
masqd_masqueraded_packets_total{family="ipv4"} 3
# HELP masqd_nonmasquerade_intervals Elements (address intervals) of the desired non-masquerade set, by family; no ipv6 series without IPv6.
# TYPE masqd_nonmasquerade_intervals gauge
masqd_nonmasquerade_intervals{family="ipv4"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Errorf("IPv4 only: %v", err)
	}

	dual := parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8::/32]\n", config.Options{EnableIPv6: true})
	m.SetDesired(dual, ruleset.Compile(dual, ruleset.Options{}))
	want = `# HELP masqd_nonmasquerade_intervals Elements (address intervals) of the desired non-masquerade set, by family; no ipv6 series without IPv6.
# TYPE masqd_nonmasquerade_intervals gauge
masqd_nonmasquerade_intervals{family="ipv4"} 2
masqd_nonmasquerade_intervals{family="ipv6"} 2
# HELP masqd_masqueraded_packets_total Packets masqueraded, by family (only a connection's first packet passes the NAT rule).
# TYPE masqd_masqueraded_packets_total counter
masqd_masqueraded_packets_total{family="ipv4"} 3
masqd_masqueraded_packets_total{family="ipv6"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[0], names[2]); err != nil {
		t.Errorf("dual stack: %v", err)
	}

	m.SetDesired(v4only, ruleset.Compile(v4only, ruleset.Options{}))
	if n := testutil.CollectAndCount(m.Intervals); n != 1 {
		t.Errorf("IPv6 turned off: %d interval series, want 1 (ipv4)", n)
	}
}

// TestConfigHash: the hash depends on what the kernel is told, not on how the config wrote it; it changes
// with any prefix or masquerade option; it is the same on every run (the literal is the default config's).
func TestConfigHash(t *testing.T) {
	hash := func(text string, opts ruleset.Options) string {
		return ConfigHash(ruleset.Compile(parseConfig(t, text, config.Options{}), opts))
	}
	rf := ruleset.Options{RandomFully: true}
	base := hash("", rf)
	if base != "625eeeb15ee0" {
		t.Errorf("default config's hash = %s; a change here changes every node's masqd_config_info", base)
	}
	if len(base) != 12 {
		t.Errorf("hash %q: want 12 hex digits", base)
	}
	same := map[string]string{
		"the defaults written out":   "nonMasqueradeCIDRs: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]\n",
		"another order":              "nonMasqueradeCIDRs: [192.168.0.0/16, 10.0.0.0/8, 172.16.0.0/12]\n",
		"a prefix inside another":    "nonMasqueradeCIDRs: [10.0.0.0/8, 10.9.0.0/16, 172.16.0.0/12, 192.168.0.0/16]\n",
		"another resync (not rules)": "resyncInterval: 10s\n",
	}
	for what, text := range same {
		if h := hash(text, rf); h != base {
			t.Errorf("%s: hash %s, want the defaults' %s", what, h, base)
		}
	}
	differ := map[string]string{
		"one more prefix":       hash("nonMasqueradeCIDRs: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10]\n", rf),
		"masqLinkLocal":         hash("masqLinkLocal: true\n", rf),
		"masqueradeCIDRs":       hash("masqueradeCIDRs: [10.2.0.0/16]\n", rf),
		"masqueradeSourceCIDRs": hash("masqueradeSourceCIDRs: [10.244.0.0/16]\n", rf),
		"other sources":         hash("masqueradeSourceCIDRs: [10.245.0.0/16]\n", rf),
		"no random-fully":       hash("", ruleset.Options{}),
		"--to-ports":            hash("", ruleset.Options{RandomFully: true, ToPorts: []ruleset.PortRange{{First: 1024, Last: 65535}}}),
	}
	seen := map[string]string{base: "the defaults"}
	for what, h := range differ {
		if other, dup := seen[h]; dup {
			t.Errorf("%s: hash %s, the same as %s's", what, h, other)
		}
		seen[h] = what
	}
}

// TestConfigInfo: masqd_config_info has one series, the hash last applied.
func TestConfigInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, countersOf{})
	if n := testutil.CollectAndCount(m.ConfigInfo); n != 0 {
		t.Errorf("before any apply: %d series, want 0", n)
	}
	m.SetApplied("aaaaaaaaaaaa")
	m.SetApplied("bbbbbbbbbbbb")
	want := `# HELP masqd_config_info Always 1; hash identifies the ruleset the kernel was last made to hold: nodes with the same hash masquerade the same destinations the same way.
# TYPE masqd_config_info gauge
masqd_config_info{hash="bbbbbbbbbbbb"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "masqd_config_info"); err != nil {
		t.Error(err)
	}
}
