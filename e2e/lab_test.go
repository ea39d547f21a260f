//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// The lab's addresses. 10.128.0.0/24 is the node subnet of a VPC whose router also knows the pod range; the
// outside namespace plays the router and every host beyond it, with the hosts' addresses on its lo.
var (
	podIP      = netip.MustParseAddr("10.244.1.2")
	podGW      = netip.MustParseAddr("10.244.1.1")
	podIP6     = netip.MustParseAddr("2001:db8:1::2")
	podGW6     = netip.MustParseAddr("2001:db8:1::1")
	nodeIP     = netip.MustParseAddr("10.128.0.5")
	nodeIP6    = netip.MustParseAddr("2001:db8:2::5")
	routerIP   = netip.MustParseAddr("10.128.0.1")
	routerIP6  = netip.MustParseAddr("2001:db8:2::1")
	nodeLocal  = netip.MustParseAddr("203.0.113.1") // on the node's lo: local, but looks external
	nodeLocal6 = netip.MustParseAddr("2001:db8:ff::1")
	internet   = netip.MustParseAddr("198.51.100.10")
	internet6  = netip.MustParseAddr("2001:db8:ff00::10")
	vpcHost    = netip.MustParseAddr("10.130.0.9")
	vpcHost6   = netip.MustParseAddr("2001:db8:100::9")
	metadata   = netip.MustParseAddr("169.254.169.254")
	endpoint   = netip.MustParseAddr("10.2.1.100") // on-prem private endpoint; with Firewall it accepts node IPs only

	podPrefix   = netip.MustParsePrefix("10.244.1.0/24")
	podPrefix6  = netip.MustParsePrefix("2001:db8:1::/64")
	clusterPods = netip.MustParsePrefix("10.244.0.0/16")
)

// labOptions changes the lab. The zero value is a lab with no firewall and no NAT anywhere.
type labOptions struct {
	// Firewall makes the outside namespace drop packets from the cluster's pods (10.244.0.0/16) to Endpoint,
	// as a private endpoint that accepts only node IPs does.
	Firewall bool
}

// Lab is three namespaces: Pod — veth — Node — veth — Outside. Echo servers run in Node and Outside.
//
//	pod  eth0 10.244.1.2/24 2001:db8:1::2/64, default via the node
//	node pod0 10.244.1.1/24 2001:db8:1::1/64; eth0 10.128.0.5/24 2001:db8:2::5/64, default via outside;
//	     lo 203.0.113.1 2001:db8:ff::1; forwarding on
//	outside eth0 10.128.0.1/24 2001:db8:2::1/64, pod ranges via the node;
//	     lo 198.51.100.10 2001:db8:ff00::10 (internet), 10.130.0.9 2001:db8:100::9 (VPC),
//	        169.254.169.254 (metadata), 10.2.1.100 (private endpoint)
type Lab struct {
	Pod, Node, Outside *NS

	PodIP, PodIP6         netip.Addr
	NodeIP, NodeIP6       netip.Addr
	NodeLocal, NodeLocal6 netip.Addr
	Internet, Internet6   netip.Addr
	VPC, VPC6             netip.Addr
	Metadata, Endpoint    netip.Addr

	nodeEcho, outsideEcho echoPorts
}

type echoPorts struct{ tcp, udp int }

// newLab builds the lab and its echo servers; everything is removed when the test ends.
func newLab(t testing.TB, opts labOptions) *Lab {
	t.Helper()
	testenv.RequireKernel(t)
	l := &Lab{
		Pod: newNS(t, "pod"), Node: newNS(t, "node"), Outside: newNS(t, "out"),
		PodIP: podIP, PodIP6: podIP6, NodeIP: nodeIP, NodeIP6: nodeIP6,
		NodeLocal: nodeLocal, NodeLocal6: nodeLocal6, Internet: internet, Internet6: internet6,
		VPC: vpcHost, VPC6: vpcHost6, Metadata: metadata, Endpoint: endpoint,
	}
	pod, node, out := l.Pod, l.Node, l.Outside

	// Set before the links exist, so they take the defaults. A new namespace copies IPv4 conf/{all,default}
	// from the host's, so rp_filter is set rather than inherited. DAD is off for the link-local addresses too:
	// a router sends neighbour solicitations for forwarded packets from its link-local address, and sends none
	// while that is tentative, so the first forwarded IPv6 packets would wait out DAD (about 2s).
	for _, ns := range []*NS{pod, node, out} {
		ns.Run(t, "sysctl", "-qw",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	// Each veth is created with its peer already in the neighbouring namespace: nothing is made in the host's.
	pod.Run(t, "ip", "link", "add", "name", "eth0", "type", "veth", "peer", "name", "pod0", "netns", node.Name)
	node.Run(t, "ip", "link", "add", "name", "eth0", "type", "veth", "peer", "name", "eth0", "netns", out.Name)

	addr := func(ns *NS, dev string, a netip.Addr, bits int) {
		args := []string{"ip", "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
		if a.Is6() {
			args = append(args, "nodad")
		}
		ns.Run(t, args...)
	}
	addr(pod, "eth0", podIP, 24)
	addr(pod, "eth0", podIP6, 64)
	addr(node, "pod0", podGW, 24)
	addr(node, "pod0", podGW6, 64)
	addr(node, "eth0", nodeIP, 24)
	addr(node, "eth0", nodeIP6, 64)
	addr(node, "lo", nodeLocal, 32)
	addr(node, "lo", nodeLocal6, 128)
	addr(out, "eth0", routerIP, 24)
	addr(out, "eth0", routerIP6, 64)
	for _, a := range []netip.Addr{internet, internet6, vpcHost, vpcHost6, metadata, endpoint} {
		addr(out, "lo", a, a.BitLen())
	}

	links := []struct {
		ns  *NS
		dev string
	}{{pod, "eth0"}, {node, "pod0"}, {node, "eth0"}, {out, "eth0"}}
	for _, k := range links {
		k.ns.Run(t, "ip", "link", "set", k.dev, "up")
	}
	for _, k := range links {
		waitFor(t, 5*time.Second, k.ns.Name+" "+k.dev+" up and its IPv6 addresses usable", func() error {
			return linkReady(k.ns, k.dev)
		})
	}

	// Gateways must be reachable on an up link, so routes come last.
	pod.Run(t, "ip", "route", "add", "default", "via", podGW.String(), "dev", "eth0")
	pod.Run(t, "ip", "-6", "route", "add", "default", "via", podGW6.String(), "dev", "eth0")
	node.Run(t, "ip", "route", "add", "default", "via", routerIP.String(), "dev", "eth0")
	node.Run(t, "ip", "-6", "route", "add", "default", "via", routerIP6.String(), "dev", "eth0")
	out.Run(t, "ip", "route", "add", podPrefix.String(), "via", nodeIP.String(), "dev", "eth0")
	out.Run(t, "ip", "-6", "route", "add", podPrefix6.String(), "via", nodeIP6.String(), "dev", "eth0")

	if opts.Firewall {
		rules := fmt.Sprintf(`table ip lab_firewall {
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr %s ip daddr %s drop
	}
}
`, clusterPods, endpoint)
		file := filepath.Join(t.TempDir(), "firewall.nft")
		if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		out.Run(t, "nft", "-f", file)
	}

	l.nodeEcho.tcp, l.nodeEcho.udp = startEchoServers(t, node)
	l.outsideEcho.tcp, l.outsideEcho.udp = startEchoServers(t, out)
	return l
}

// linkReady says why dev in ns is not yet usable: not operationally up, or an IPv6 address still tentative.
func linkReady(ns *NS, dev string) error {
	out, err := ns.RunErr("ip", "-br", "link", "show", "dev", dev)
	if err != nil {
		return err
	}
	if f := strings.Fields(out); len(f) < 2 || f[1] != "UP" {
		return fmt.Errorf("link: %s", strings.TrimSpace(out))
	}
	out, err = ns.RunErr("ip", "-6", "addr", "show", "dev", dev, "tentative")
	if err != nil {
		return err
	}
	if strings.Contains(out, "dadfailed") {
		return fmt.Errorf("IPv6 duplicate address detection failed: %s", out)
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("tentative IPv6 addresses: %s", strings.TrimSpace(out))
	}
	return nil
}

// echoFor returns the namespace whose echo servers answer on dst, and their ports: the node's for the node's
// own addresses, the outside's for everything else.
func (l *Lab) echoFor(dst netip.Addr) (*NS, echoPorts) {
	switch dst {
	case l.NodeIP, l.NodeIP6, l.NodeLocal, l.NodeLocal6, podGW, podGW6:
		return l.Node, l.nodeEcho
	}
	return l.Outside, l.outsideEcho
}
