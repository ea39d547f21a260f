//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// The second uplink of the node: up2 to a second outside namespace, whose lo holds far2 (a host reached
// only that way).
var (
	up2Node    = netip.MustParseAddr("10.129.0.5")
	up2Node6   = netip.MustParseAddr("2001:db8:3::5")
	up2Router  = netip.MustParseAddr("10.129.0.1")
	up2Router6 = netip.MustParseAddr("2001:db8:3::1")
	far2       = netip.MustParseAddr("192.0.2.10")
	far2Net    = netip.MustParsePrefix("192.0.2.0/24")
	far2v6     = netip.MustParseAddr("2001:db8:ee::10")
	far2Net6   = netip.MustParsePrefix("2001:db8:ee::/64")
	// The addresses up2 moves to, in other subnets: each is then up2's primary address.
	up2Moved  = netip.MustParseAddr("10.129.1.5")
	up2Moved6 = netip.MustParseAddr("2001:db8:4::5")
)

// twoUplinks is the lab with a second uplink: the node's eth0 leads to Outside (the internet, the default
// route), its up2 to Outside2, which holds far2 and routes the pod ranges back through the node. Outside
// routes the node's other addresses (lo's, up2's) back through eth0.
type twoUplinks struct {
	*Lab
	Outside2 *NS
	echo2    echoPorts
}

func newTwoUplinks(t *testing.T) *twoUplinks {
	t.Helper()
	lab := newLab(t, labOptions{})
	out2 := newNS(t, "out2")
	out2.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	lab.Node.Run(t, "ip", "link", "add", "name", "up2", "type", "veth", "peer", "name", "eth0", "netns", out2.Name)
	addr := func(ns *NS, dev string, a netip.Addr, bits int) {
		args := []string{"ip", "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
		if a.Is6() {
			args = append(args, "nodad")
		}
		ns.Run(t, args...)
	}
	addr(lab.Node, "up2", up2Node, 24)
	addr(lab.Node, "up2", up2Node6, 64)
	addr(out2, "eth0", up2Router, 24)
	addr(out2, "eth0", up2Router6, 64)
	addr(out2, "lo", far2, 32)
	addr(out2, "lo", far2v6, 128)
	links := []struct {
		ns  *NS
		dev string
	}{{lab.Node, "up2"}, {out2, "eth0"}}
	for _, k := range links {
		k.ns.Run(t, "ip", "link", "set", k.dev, "up")
	}
	for _, k := range links {
		waitFor(t, 5*time.Second, k.ns.Name+" "+k.dev+" up", func() error { return linkReady(k.ns, k.dev) })
	}
	lab.Node.Run(t, "ip", "route", "add", far2Net.String(), "via", up2Router.String(), "dev", "up2")
	lab.Node.Run(t, "ip", "-6", "route", "add", far2Net6.String(), "via", up2Router6.String(), "dev", "up2")
	out2.Run(t, "ip", "route", "add", podPrefix.String(), "via", up2Node.String(), "dev", "eth0")
	out2.Run(t, "ip", "-6", "route", "add", podPrefix6.String(), "via", up2Node6.String(), "dev", "eth0")
	for _, p := range []string{netip.PrefixFrom(nodeLocal, 32).String(), "10.129.0.0/16"} {
		lab.Outside.Run(t, "ip", "route", "add", p, "via", nodeIP.String(), "dev", "eth0")
	}
	for _, p := range []string{netip.PrefixFrom(nodeLocal6, 128).String(), "2001:db8:3::/64", "2001:db8:4::/64"} {
		lab.Outside.Run(t, "ip", "-6", "route", "add", p, "via", nodeIP6.String(), "dev", "eth0")
	}
	l := &twoUplinks{Lab: lab, Outside2: out2}
	l.echo2.tcp, l.echo2.udp = startEchoServers(t, out2)
	return l
}

// seen sends proto from the pod to dst (through up2 when dst is far2's) and returns the source the far end
// saw.
func (l *twoUplinks) seen(proto string, dst netip.Addr) (netip.Addr, error) {
	ports := l.outsideEcho
	if dst == far2 || dst == far2v6 {
		ports = l.echo2
	}
	if proto == "tcp" {
		return sourceSeenTCPFrom(l.Pod, netip.Addr{}, dst, ports.tcp, probeTimeout)
	}
	return sourceSeenUDPFrom(l.Pod, netip.AddrPortFrom(netip.Addr{}, 0), dst, ports.udp, probeTimeout)
}

// check asserts, over TCP and UDP, that the pod's traffic to each destination arrives from its source.
func (l *twoUplinks) check(t *testing.T, step string, cases []expect) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp"} {
		for _, c := range cases {
			got, err := l.seen(proto, c.dst)
			switch {
			case err != nil:
				t.Errorf("%s: %s from the pod to %s: %v", step, proto, c.dst, err)
			case got != c.src:
				t.Errorf("%s: %s from the pod to %s arrived from %s, want %s", step, proto, c.dst, got, c.src)
			}
		}
	}
}

// TestSNAT: a node with two uplinks, eth0 (the internet) and up2 (far2). egressInterfaces: [eth0]
// masquerades the pods' traffic leaving through eth0 only: far2, through up2, sees the pod. snatTo makes it
// leave with the node's other address (on lo) instead of eth0's, still through eth0 only. snatToInterface:
// up2 makes it leave through eth0 with up2's address, and follows up2 when its address changes, in both
// families, over TCP and UDP. --dry-run equals what nft lists after apply; iptables mode refuses the keys.
func TestSNAT(t *testing.T) {
	testenv.RequireKernel(t)
	l := newTwoUplinks(t)

	// As upstream: masqueraded through either uplink, with that uplink's address.
	applyConfig(t, l.Lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\n", "--enable-ipv6")
	l.check(t, "no new keys", []expect{{internet, nodeIP}, {internet6, nodeIP6}, {far2, up2Node}, {far2v6, up2Node6}})

	const egress = "nonMasqueradeCIDRs: [10.0.0.0/8]\negressInterfaces: [eth0]\n"
	applyConfig(t, l.Lab, egress, "--enable-ipv6")
	l.check(t, "egressInterfaces", []expect{{internet, nodeIP}, {internet6, nodeIP6}, {far2, podIP}, {far2v6, podIP6}})

	snatTo := egress + fmt.Sprintf("snatTo: [%s, '%s']\n", nodeLocal, nodeLocal6)
	applyConfig(t, l.Lab, snatTo, "--enable-ipv6")
	l.check(t, "snatTo", []expect{{internet, nodeLocal}, {internet6, nodeLocal6}, {far2, podIP}, {far2v6, podIP6}})
	// With --to-ports as well: the port rules snat to the address too.
	applyConfig(t, l.Lab, snatTo, "--enable-ipv6", "--to-ports=20000-29999")
	l.check(t, "snatTo with --to-ports", []expect{{internet, nodeLocal}, {internet6, nodeLocal6}})

	// iptables mode cannot express them: refused with the reason, nothing changed.
	before := l.Node.Run(t, "nft", "list", "ruleset")
	r := runMasqd(t, l.Node, "--config="+writeConfig(t, snatTo), "--enable-ipv6", "--once", "--mode=iptables")
	if r.code == 0 || !strings.Contains(r.stderr, "egressInterfaces") || !strings.Contains(r.stderr, "iptables mode") {
		t.Errorf("--mode=iptables --once: exit %d, stderr %q; want a failure naming egressInterfaces and iptables mode", r.code, r.stderr)
	}
	if after := l.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("the refused apply changed the kernel:\n%s\nwas\n%s", after, before)
	}

	// snatToInterface, with the agent running: up2's address, then wherever up2's address goes.
	path := writeConfig(t, egress+"snatToInterface: up2\n")
	a := startAgent(t, l.Node, 9745, "--config="+path, "--enable-ipv6")
	a.waitStatus("/readyz", 200)
	want := mustMasqd(t, l.Node, "--config="+path, "--enable-ipv6", "--dry-run")
	if got := zeroCounters(l.Node.Run(t, "nft", "list", "table", "inet", "masqd")); got != want || !strings.Contains(want, "snat ip to "+up2Node.String()) {
		t.Fatalf("nft lists\n%s\n--dry-run on the node prints\n%s\nwant both to snat to %s", got, want, up2Node)
	}
	l.check(t, "snatToInterface", []expect{{internet, up2Node}, {internet6, up2Node6}, {far2, podIP}, {far2v6, podIP6}})
	if a.metric(`masqd_snat_interface_resolved{family="ipv4"}`) != 1 || a.metric(`masqd_snat_interface_resolved{family="ipv6"}`) != 1 {
		t.Errorf("masqd_snat_interface_resolved is not 1 for both families")
	}

	// up2 moves to other subnets: a new primary address of each family, then the old ones go.
	l.Node.Run(t, "ip", "addr", "add", netip.PrefixFrom(up2Moved, 24).String(), "dev", "up2")
	l.Node.Run(t, "ip", "addr", "add", netip.PrefixFrom(up2Moved6, 64).String(), "dev", "up2", "nodad")
	l.Node.Run(t, "ip", "addr", "del", netip.PrefixFrom(up2Node, 24).String(), "dev", "up2")
	l.Node.Run(t, "ip", "addr", "del", netip.PrefixFrom(up2Node6, 64).String(), "dev", "up2")
	waitFor(t, 10*time.Second, "the rules to follow up2's new addresses", func() error {
		listed := l.Node.Run(t, "nft", "list", "table", "inet", "masqd")
		if !strings.Contains(listed, "snat ip to "+up2Moved.String()) || !strings.Contains(listed, "snat ip6 to "+up2Moved6.String()) {
			return fmt.Errorf("nft lists\n%s", listed)
		}
		return nil
	})
	l.check(t, "snatToInterface after up2 moved", []expect{{internet, up2Moved}, {internet6, up2Moved6}})

	// up2 has no address left: masquerade with eth0's, said by the metric.
	l.Node.Run(t, "ip", "addr", "flush", "dev", "up2", "scope", "global")
	waitFor(t, 10*time.Second, "the rules to fall back to masquerade", func() error {
		if listed := l.Node.Run(t, "nft", "list", "table", "inet", "masqd"); strings.Contains(listed, "snat") {
			return fmt.Errorf("nft lists\n%s", listed)
		}
		return nil
	})
	l.check(t, "snatToInterface without an address", []expect{{internet, nodeIP}, {internet6, nodeIP6}})
	if a.metric(`masqd_snat_interface_resolved{family="ipv4"}`) != 0 {
		t.Errorf("masqd_snat_interface_resolved{family=\"ipv4\"} is not 0 once up2 has no address")
	}
}
