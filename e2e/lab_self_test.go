//go:build linux

package e2e

import (
	"net/netip"
	"testing"
	"time"
)

// TestLabNoNAT checks the lab itself: with no NAT anywhere, every destination sees the pod's own address.
func TestLabNoNAT(t *testing.T) {
	t.Parallel()
	lab := newLab(t, labOptions{})
	for _, proto := range []string{"tcp", "udp"} {
		for _, dst := range []netip.Addr{lab.Internet, lab.VPC, lab.Metadata, lab.Endpoint, lab.NodeIP, lab.NodeLocal} {
			assertSource(t, lab, proto, dst, lab.PodIP)
		}
		for _, dst := range []netip.Addr{lab.Internet6, lab.VPC6, lab.NodeIP6, lab.NodeLocal6} {
			assertSource(t, lab, proto, dst, lab.PodIP6)
		}
	}
}

// TestLabFirewall checks the private-endpoint scenario's firewall: the private endpoint drops the pod and accepts the node.
func TestLabFirewall(t *testing.T) {
	t.Parallel()
	lab := newLab(t, labOptions{Firewall: true})

	const dropTimeout = time.Second
	got, err := sourceSeenTCP(lab.Pod, lab.Endpoint, lab.outsideEcho.tcp, dropTimeout)
	if err == nil {
		t.Errorf("tcp from pod to %s: outside saw %s, want the connection dropped", lab.Endpoint, got)
	} else if !isTimeout(err) {
		t.Errorf("tcp from pod to %s: %v, want a timeout", lab.Endpoint, err)
	}

	got, err = sourceSeenTCP(lab.Node, lab.Endpoint, lab.outsideEcho.tcp, probeTimeout)
	if err != nil {
		t.Fatalf("from node: %v", err)
	}
	if got != lab.NodeIP {
		t.Errorf("tcp from node to %s: outside saw %s, want %s", lab.Endpoint, got, lab.NodeIP)
	}
	// The rest of the outside still talks to the pod.
	assertSource(t, lab, "tcp", lab.VPC, lab.PodIP)
}

// TestLabMasquerade proves the lab can observe masquerade: a plain nft rule in the node namespace that
// masquerades traffic to one internet host changes what that host sees and nothing else.
func TestLabMasquerade(t *testing.T) {
	t.Parallel()
	lab := newLab(t, labOptions{})
	lab.Node.Run(t, "nft", "add", "table", "ip", "t")
	lab.Node.Run(t, "nft", "add", "chain", "ip", "t", "p", "{ type nat hook postrouting priority 100 ; }")
	lab.Node.Run(t, "nft", "add", "rule", "ip", "t", "p", "ip", "daddr", lab.Internet.String(), "masquerade")

	for _, proto := range []string{"tcp", "udp"} {
		assertSource(t, lab, proto, lab.Internet, lab.NodeIP)
		assertSource(t, lab, proto, lab.VPC, lab.PodIP)
		assertSource(t, lab, proto, lab.Internet6, lab.PodIP6)
	}
}
