package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
	"github.com/masqd/masqd/status"
)

// Answers of an agent on the default --http-address: ready and in step, or failing since its config was
// rejected.
var (
	agentReady = map[string]string{
		"http://127.0.0.1:9745/readyz": "200 ok\n",
		"http://127.0.0.1:9745/metrics": "200 " + `# HELP masqd_build_info Always 1; the labels say the version and the backend in use.
# TYPE masqd_build_info gauge
masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 1
masqd_drift_repairs_total 1
masqd_last_sync_success_timestamp_seconds 1.7778888e+09
masqd_sync_total{result="error"} 0
masqd_sync_total{result="success"} 42
`,
	}
	agentRejecting = map[string]string{
		"http://127.0.0.1:9745/readyz": "503 not ready: the kernel does not hold the desired ruleset yet (see the logs and masqd_sync_total)\n",
		"http://127.0.0.1:9745/metrics": "200 " + `masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 0
masqd_drift_repairs_total 0
masqd_last_sync_success_timestamp_seconds 0
masqd_sync_total{result="error"} 3
masqd_sync_total{result="success"} 0
`,
	}
)

// Answers of an agent whose --config names no file, and of one that rejects its config on a node where it
// holds no rules.
var (
	agentFileAbsent = map[string]string{
		"http://127.0.0.1:9745/readyz": "200 ok\n",
		"http://127.0.0.1:9745/metrics": "200 " + `masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 1
masqd_config_state{state="valid"} 0
masqd_config_state{state="defaults_file_absent"} 1
masqd_config_state{state="invalid_nothing_applied"} 0
masqd_last_sync_success_timestamp_seconds 1.7778888e+09
masqd_sync_total{result="error"} 0
masqd_sync_total{result="success"} 1
`,
	}
	agentNothingApplied = map[string]string{
		"http://127.0.0.1:9745/readyz": "503 not ready: nothing applied: the config is invalid, and masqd holds no rules on this node, so it masquerades nothing until the config is fixed: /etc/config/ip-masq-agent line 1: ...\n",
		"http://127.0.0.1:9745/metrics": "200 " + `masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 0
masqd_config_state{state="valid"} 0
masqd_config_state{state="invalid_nothing_applied"} 1
masqd_last_sync_success_timestamp_seconds 0
masqd_sync_total{result="error"} 0
masqd_sync_total{result="success"} 0
`,
	}
)

func interval(s string) ruleset.Interval { return ruleset.PrefixInterval(netip.MustParsePrefix(s)) }

// sortIntervals keeps a tampered set in the kernel's order.
func sortIntervals(ivs []ruleset.Interval) []ruleset.Interval {
	slices.SortFunc(ivs, func(a, b ruleset.Interval) int { return a.First().Compare(b.First()) })
	return ivs
}

// TestStatusGolden compares the scenarios' configs with kernels that hold them, or not.
func TestStatusGolden(t *testing.T) {
	none := config.Options{}
	ciliumTKE := compiled(t, "testdata/cilium-tke.config", none, randomFully)
	ciliumTKE.Counter4 = ruleset.Counter{Packets: 1200, Bytes: 72000}

	// Someone deleted 172.18.0.0/16 and added 8.8.8.8, and a rule of their own.
	tampered := ciliumTKE
	tampered.NonMasq4 = sortIntervals(append(slices.DeleteFunc(slices.Clone(ciliumTKE.NonMasq4),
		func(iv ruleset.Interval) bool { return iv == interval("172.18.0.0/16") }), interval("8.8.8.8/32")))
	tampered.Foreign = []string{"rule 1 (handle 9) in chain postrouting"}

	// The GKE SNAT notes' "only the MASQUERADE rule": the set holds nothing.
	emptySet := ciliumTKE
	emptySet.NonMasq4 = nil

	// The same addresses as the Cilium-on-TKE config, split into other intervals (10.0.0.0/16 as two /17s).
	split := ciliumTKE
	split.NonMasq4 = sortIntervals(append(slices.DeleteFunc(slices.Clone(ciliumTKE.NonMasq4),
		func(iv ruleset.Interval) bool { return iv == interval("10.0.0.0/16") }), interval("10.0.0.0/17"), interval("10.0.128.0/17")))

	// The agent runs with --enable-ipv6 --random-fully=false; status is run without them.
	otherFlags := compiled(t, "testdata/cilium-tke.config", config.Options{EnableIPv6: true}, ruleset.Options{})
	otherFlags.Counter6 = ruleset.Counter{Packets: 7, Bytes: 560}

	defaults := compiled(t, "testdata/absent", none, randomFully)
	gkeDefaults := compiled(t, "testdata/absent", config.Options{NoMasqAllReservedRanges: true}, randomFully)

	// The agent runs with --cluster-cidr=172.31.0.0/16.
	podRange := config.Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16")}}
	clusterCIDRs := compiled(t, "testdata/cluster-cidrs.config", podRange, randomFully)

	sources := compiled(t, "testdata/masquerade-sources.config", none, randomFully)

	// The agent runs with --discover-pod-cidrs: the kernel holds the Nodes' ranges too.
	pods, _ := discoveredNodes()
	discoveredCfg, _, err := config.Load("testdata/cluster-cidrs.config", none)
	if err != nil {
		t.Fatal(err)
	}
	discovered := ruleset.Compile(config.WithNodePodCIDRs(discoveredCfg, pods), randomFully)
	withNodes := func(h status.Host) status.Host { h.PodCIDRs = discoveredNodes; return h }
	allSources := sources
	allSources.Sources, allSources.Src4 = false, nil

	snat := compiled(t, "testdata/snat.config", none, randomFully)
	snatIface := ruleset.Compile(testenvLoad(t, "testdata/snat-interface.config"), ruleset.Options{RandomFully: true,
		Interface: ruleset.InterfaceAddrs{Name: "eth0", V4: netip.MustParseAddr("10.128.0.5")}})
	elsewhere := compiled(t, "testdata/snat-elsewhere.config", none, randomFully)
	flush := compiled(t, "testdata/flush-conntrack.config", none, randomFully)
	// An agent with the conntrack flush on: 3 entries deleted so far, one flush failed.
	agentFlushing := map[string]string{
		"http://127.0.0.1:9745/readyz": "200 ok\n",
		"http://127.0.0.1:9745/metrics": "200 " + `masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 1
masqd_conntrack_deleted_total{family="ipv4"} 2
masqd_conntrack_deleted_total{family="ipv6"} 1
masqd_conntrack_flush_enabled 1
masqd_conntrack_flushes_total{result="error"} 1
masqd_conntrack_flushes_total{result="success"} 4
masqd_last_sync_success_timestamp_seconds 1.7778888e+09
masqd_sync_total{result="error"} 0
masqd_sync_total{result="success"} 5
`,
	}

	for _, tc := range []struct {
		golden string
		h      status.Host
		args   []string
	}{
		// egressInterfaces and snatTo applied; snatToInterface applied with the address the node resolves,
		// and with eth0's address moved since (the kernel still has the old one).
		{"status-snat-match", testHost(fakeKernel{rs: snat, present: true}, nil),
			[]string{"--config=testdata/snat.config", "--http-address="}},
		{"status-snat-interface-match", withInterface(testHost(fakeKernel{rs: snatIface, present: true}, nil), "10.128.0.5"),
			[]string{"--config=testdata/snat-interface.config", "--http-address="}},
		{"status-snat-interface-moved", withInterface(testHost(fakeKernel{rs: snatIface, present: true}, nil), "10.128.0.6"),
			[]string{"--config=testdata/snat-interface.config", "--http-address="}},
		// snatTo an address the node does not have: applied, and warned about.
		{"status-snat-not-local", testHost(fakeKernel{rs: elsewhere, present: true}, nil),
			[]string{"--config=testdata/snat-elsewhere.config", "--http-address="}},
		{"status-cilium-tke-match", testHost(fakeKernel{rs: ciliumTKE, present: true}, agentReady),
			[]string{"--config=testdata/cilium-tke.config"}},
		{"status-cilium-tke-tampered", testHost(fakeKernel{rs: tampered, present: true}, nil),
			[]string{"--config=testdata/cilium-tke.config"}},
		{"status-gke-snat-not-applied", testHost(fakeKernel{rs: emptySet, present: true}, agentRejecting),
			[]string{"--config=testdata/cilium-tke.config"}},
		// The private endpoint: the TO-BE ConfigMap was created, but the agent still holds GKE's defaults.
		{"status-private-endpoint-defaults", testHost(fakeKernel{rs: gkeDefaults, present: true}, agentReady),
			[]string{"--config=testdata/private-endpoint-to-be-fixed.config", "--nomasq-all-reserved-ranges"}},
		{"status-split", testHost(fakeKernel{rs: split, present: true}, nil),
			[]string{"--config=testdata/cilium-tke.config", "--http-address="}},
		{"status-other-flags", testHost(fakeKernel{rs: otherFlags, present: true}, agentReady),
			[]string{"--config=testdata/cilium-tke.config"}},
		{"status-no-table", testHost(fakeKernel{}, nil), []string{"--config=testdata/user-guide.config"}},
		{"status-defaults-match", testHost(fakeKernel{rs: gkeDefaults, present: true}, nil),
			[]string{"--config=testdata/absent", "--nomasq-all-reserved-ranges", "--http-address="}},
		{"status-invalid-config", testHost(fakeKernel{rs: ciliumTKE, present: true}, agentRejecting),
			[]string{"--config=testdata/private-endpoint-to-be.config"}},
		{"status-permission", testHost(fakeKernel{err: fmt.Errorf("nftables: list table inet masqd: %w", os.ErrPermission)}, nil),
			[]string{"--config=testdata/cilium-tke.config", "--http-address="}},
		{"status-json", testHost(fakeKernel{rs: tampered, present: true}, agentReady),
			[]string{"--config=testdata/cilium-tke.config", "--output=json"}},
		// The pod ranges: status given the agent's --cluster-cidr lists them and matches; without it, it says to give it.
		{"status-cluster-cidrs-match", testHost(fakeKernel{rs: clusterCIDRs, present: true}, nil),
			[]string{"--config=testdata/cluster-cidrs.config", "--cluster-cidr=172.31.0.0/16", "--http-address="}},
		{"status-cluster-cidrs-flag-missing", testHost(fakeKernel{rs: clusterCIDRs, present: true}, agentReady),
			[]string{"--config=testdata/cluster-cidrs.config"}},
		// masqueradeSourceCIDRs: applied, and not yet applied (the kernel masquerades every source).
		{"status-masquerade-sources-match", testHost(fakeKernel{rs: sources, present: true}, nil),
			[]string{"--config=testdata/masquerade-sources.config", "--http-address="}},
		{"status-masquerade-sources-differ", testHost(fakeKernel{rs: allSources, present: true}, nil),
			[]string{"--config=testdata/masquerade-sources.config", "--http-address="}},
		// flushConntrack: the config and the agent say it is on, and what the agent flushed.
		{"status-flush-conntrack", testHost(fakeKernel{rs: flush, present: true}, agentFlushing),
			[]string{"--config=testdata/flush-conntrack.config"}},
		{"status-operand", testHost(fakeKernel{}, nil), []string{"testdata/cilium-tke.config"}},
		{"status-iptables-chain-only", withIPTables(testHost(fakeKernel{}, nil), "iptables-nft"),
			[]string{"--config=testdata/cilium-tke.config", "--http-address="}},
		{"status-agent-file-absent", testHost(fakeKernel{rs: defaults, present: true}, agentFileAbsent),
			[]string{"--config=testdata/absent"}},
		{"status-agent-nothing-applied", testHost(fakeKernel{}, agentNothingApplied),
			[]string{"--config=testdata/private-endpoint-to-be.config"}},
		// --discover-pod-cidrs: given it, status reads the Nodes and matches; without it, the Nodes' ranges are only in the kernel.
		{"status-discover-pod-cidrs-match", withNodes(testHost(fakeKernel{rs: discovered, present: true}, nil)),
			[]string{"--config=testdata/cluster-cidrs.config", "--discover-pod-cidrs", "--http-address="}},
		{"status-discover-pod-cidrs-flag-missing", withNodes(testHost(fakeKernel{rs: discovered, present: true}, map[string]string{
			"http://127.0.0.1:9745/readyz":  "200 ok\n",
			"http://127.0.0.1:9745/metrics": agentReady["http://127.0.0.1:9745/metrics"] + "masqd_discovered_pod_cidrs 3\n",
		})),
			[]string{"--config=testdata/cluster-cidrs.config"}},
		// --node-name: the agent says its node's pod range 10.244.1.0/24 is masqueraded, 10.0.3.0/24 kept.
		{"status-agent-node-pod-cidrs", testHost(fakeKernel{rs: ciliumTKE, present: true}, map[string]string{
			"http://127.0.0.1:9745/readyz": "200 ok\n",
			"http://127.0.0.1:9745/metrics": agentReady["http://127.0.0.1:9745/metrics"] +
				"masqd_node_pod_cidr_masqueraded{cidr=\"10.244.1.0/24\"} 1\nmasqd_node_pod_cidr_masqueraded{cidr=\"10.0.3.0/24\"} 0\n",
		}), []string{"--config=testdata/cilium-tke.config"}},
		{"status-iptables-agent", testHost(fakeKernel{}, map[string]string{
			"http://127.0.0.1:9745/readyz":  "200 ok\n",
			"http://127.0.0.1:9745/metrics": "200 masqd_build_info{backend=\"iptables-legacy\",version=\"v0.3.0\"} 1\n",
		}), []string{"--config=testdata/cilium-tke.config"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			checkGolden(t, tc.golden, "status", withHost(tc.h, statusMain), tc.args...)
		})
	}
}

// TestStatusJSONExit: the JSON says the same result as the exit status.
func TestStatusJSONExit(t *testing.T) {
	ciliumTKE := compiled(t, "testdata/cilium-tke.config", config.Options{}, randomFully)
	for _, tc := range []struct {
		k    fakeKernel
		code int
		res  string
	}{
		{fakeKernel{rs: ciliumTKE, present: true}, 0, status.Match},
		{fakeKernel{}, 1, status.Mismatch},
		{fakeKernel{err: os.ErrPermission}, 2, status.Unknown},
	} {
		var stdout, stderr bytes.Buffer
		code := statusMain([]string{"--config=testdata/cilium-tke.config", "--output=json", "--http-address="}, &stdout, &stderr, testHost(tc.k, nil))
		var r status.Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		if code != tc.code || r.Result != tc.res {
			t.Errorf("kernel %+v: exit %d, result %q; want %d, %q", tc.k, code, r.Result, tc.code, tc.res)
		}
	}
}

func TestStatusHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-h"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Exit status: 0 the kernel holds the config") || stderr.Len() > 0 {
		t.Errorf("masqd status -h: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// withIPTables is h with the --masq-chain chain found in the nat table of the given iptables variants.
func withIPTables(h status.Host, variants ...string) status.Host {
	h.IPTables = func(string) []string { return variants }
	return h
}

func testenvLoad(t *testing.T, path string) config.Config {
	t.Helper()
	cfg, _, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
