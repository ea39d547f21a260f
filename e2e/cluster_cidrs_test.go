//go:build linux

package e2e

import (
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
)

// remotePod and remotePod6 stand for a pod on another node, in a pod range outside RFC 1918 (kops' default
// 100.96.0.0/11, GKE's non-RFC 1918 ranges): ip-masq-agent's default nonMasqueradeCIDRs do not hold it, so
// unless the pod range is listed, pod-to-pod traffic across nodes leaves with the node's address.
var (
	remotePod     = netip.MustParseAddr("100.96.3.7")
	remotePod6    = netip.MustParseAddr("2001:db8:96::7")
	remotePods    = "100.96.0.0/11"
	remotePods6   = "2001:db8:96::/48"
	secondPodsVPC = "10.130.0.0/16" // the lab's VPC host, standing for a second pod range
)

// addRemotePods puts remotePod and remotePod6 on the outside namespace's lo, where its echo servers answer.
func addRemotePods(t *testing.T, lab *Lab) {
	t.Helper()
	for _, a := range []netip.Addr{remotePod, remotePod6} {
		lab.Outside.Run(t, "ip", "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo")
	}
}

// TestClusterCIDRs: the pod ranges typed once, with --cluster-cidr (as kube-proxy has it) or the key
// clusterCIDRs, keep pod-to-pod traffic's source while the internet still sees the node; the flag and the
// key add up, dual-stack. Without them, ip-masq-agent's defaults masquerade the remote pod.
func TestClusterCIDRs(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	addRemotePods(t, lab)

	// The mistake: the defaults do not hold a pod range outside RFC 1918.
	applyConfig(t, lab, "")
	checkSources(t, lab, []expect{{remotePod, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	// The flag alone, beside an ip-masq-agent config that means what it meant.
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\n", "--cluster-cidr="+remotePods)
	checkSources(t, lab, []expect{
		{remotePod, lab.PodIP},
		{lab.Internet, lab.NodeIP},
		{lab.VPC, lab.PodIP},
	})

	// The key and the flag (repeated, comma-separated, dual-stack) add up.
	applyConfig(t, lab, "nonMasqueradeCIDRs: []\nclusterCIDRs: ["+remotePods+"]\n", "--enable-ipv6",
		"--cluster-cidr="+secondPodsVPC, "--cluster-cidr=192.0.2.0/24,"+remotePods6)
	checkSources(t, lab, []expect{
		{remotePod, lab.PodIP},   // the key
		{lab.VPC, lab.PodIP},     // the flag
		{remotePod6, lab.PodIP6}, // the flag's IPv6 prefix
		{lab.Internet, lab.NodeIP},
		{lab.Internet6, lab.NodeIP6},
		{lab.Endpoint, lab.NodeIP}, // 10.2.1.100: no list holds it
	})

	// The agent takes the flag as --once does, and counts the pod ranges.
	a := startAgent(t, lab.Node, 9745, "--config="+writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n"), "--cluster-cidr="+remotePods)
	a.waitStatus("/readyz", 200)
	checkSources(t, lab, []expect{{remotePod, lab.PodIP}, {lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
	if got := a.metric(`masqd_config_cidrs{key="clusterCIDRs"}`); got != 1 {
		t.Errorf(`masqd_config_cidrs{key="clusterCIDRs"} = %v, want 1`, got)
	}
}

// TestClusterCIDRsBackends: the same pod ranges in every backend (the iptables chain gets a RETURN rule for
// each), from the key and the flag's option together.
func TestClusterCIDRsBackends(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	lab := newLab(t, labOptions{})
	addRemotePods(t, lab)
	cfg := parseConfig(t, "nonMasqueradeCIDRs: []\nclusterCIDRs: ["+remotePods+"]\n", config.Options{EnableIPv6: true,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix(secondPodsVPC), netip.MustParsePrefix(remotePods6)}})
	for _, b := range allBackends {
		t.Run(b.name, func(t *testing.T) {
			remove := b.apply(t, lab, cfg, nil)
			defer remove()
			checkSources(t, lab, []expect{
				{remotePod, lab.PodIP},
				{lab.VPC, lab.PodIP},
				{remotePod6, lab.PodIP6},
				{lab.Internet, lab.NodeIP},
				{lab.Internet6, lab.NodeIP6},
			})
		})
	}
}
