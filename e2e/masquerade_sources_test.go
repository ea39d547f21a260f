//go:build linux

package e2e

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/masqd/masqd/internal/testenv"
)

// checkSourcesFrom sends TCP and UDP from the node's address src (a host-network workload bound to it) to
// dst in the outside namespace, and fails t unless the outside saw want.
func checkSourcesFrom(t *testing.T, lab *Lab, src, dst, want netip.Addr) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp"} {
		assertSourceFrom(t, lab, lab.Node, src, proto, dst, want)
	}
}

// TestMasqueradeSourceCIDRs: masqueradeSourceCIDRs (the pod ranges) restricts masquerading to the pods'
// traffic: a host-network workload sending from the node's second address (on lo here, as a multi-homed
// node's other address) keeps it, while pods still leave with the node's address, in both families. In
// iptables mode the key is refused, saying why, and the kernel is left as it was.
func TestMasqueradeSourceCIDRs(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	// Replies to the node's second addresses are routed back to the node.
	lab.Outside.Run(t, "ip", "route", "add", netip.PrefixFrom(nodeLocal, 32).String(), "via", nodeIP.String(), "dev", "eth0")
	lab.Outside.Run(t, "ip", "-6", "route", "add", netip.PrefixFrom(nodeLocal6, 128).String(), "via", nodeIP6.String(), "dev", "eth0")

	// Without the key, as upstream: every source is masqueraded, the second address too.
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\n", "--enable-ipv6")
	checkSourcesFrom(t, lab, nodeLocal, lab.Internet, lab.NodeIP)
	checkSourcesFrom(t, lab, nodeLocal6, lab.Internet6, lab.NodeIP6)

	// With it: only the pods.
	const cfg = "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeSourceCIDRs: [10.244.0.0/16, 2001:db8:1::/64]\n"
	applyConfig(t, lab, cfg, "--enable-ipv6")
	checkSources(t, lab, []expect{
		{lab.Internet, lab.NodeIP},
		{lab.Internet6, lab.NodeIP6},
		{lab.VPC, lab.PodIP},
	})
	checkSourcesFrom(t, lab, nodeLocal, lab.Internet, nodeLocal)
	checkSourcesFrom(t, lab, nodeLocal6, lab.Internet6, nodeLocal6)

	// iptables mode cannot express it: refused with the reason, nothing changed.
	before := lab.Node.Run(t, "nft", "list", "ruleset")
	r := runMasqd(t, lab.Node, "--config="+writeConfig(t, cfg), "--enable-ipv6", "--once", "--mode=iptables")
	if r.code == 0 || !strings.Contains(r.stderr, "masqueradeSourceCIDRs") || !strings.Contains(r.stderr, "iptables mode") {
		t.Errorf("--mode=iptables --once: exit %d, stderr %q; want a failure naming masqueradeSourceCIDRs and iptables mode", r.code, r.stderr)
	}
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the refused apply changed the kernel:\n%s\nwas\n%s", after, before)
	}
}
