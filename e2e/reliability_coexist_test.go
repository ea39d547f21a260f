//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// kubeProxyLike is a table shaped like kube-proxy's nftables mode (sets, verdict maps, service and endpoint
// chains, and base chains at nat prerouting, output and postrouting), written by hand.
const kubeProxyLike = `table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = { 10.96.0.1, 10.96.0.10 }
	}
	set nodeport-ips {
		type ipv4_addr
		comment "IPs that accept NodePort traffic"
		elements = { 10.128.0.5 }
	}
	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
	}
	map service-nodeports {
		type inet_proto . inet_service : verdict
		comment "NodePort traffic"
		elements = { tcp . 30080 : goto external-4YQRT2ES-default/web/tcp/http }
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https,
			     10.96.0.10 . tcp . 80 : goto service-4YQRT2ES-default/web/tcp/http }
	}
	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}
	chain masquerading {
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}
	chain filter-forward {
		type filter hook forward priority -110; policy accept;
		ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}
	chain endpoint-6OYJ3ZK5-default/kubernetes/tcp/https__10.128.0.5/6443 {
		ip saddr 10.128.0.5 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.128.0.5:6443
	}
	chain service-2QRHZV4L-default/kubernetes/tcp/https {
		ip daddr 10.96.0.1 tcp dport 443 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap { 0 : goto endpoint-6OYJ3ZK5-default/kubernetes/tcp/https__10.128.0.5/6443 }
	}
	chain endpoint-QLH5LQWD-default/web/tcp/http__10.244.1.2/8080 {
		ip saddr 10.244.1.2 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.2:8080
	}
	chain service-4YQRT2ES-default/web/tcp/http {
		ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 1 vmap { 0 : goto endpoint-QLH5LQWD-default/web/tcp/http__10.244.1.2/8080 }
	}
	chain external-4YQRT2ES-default/web/tcp/http {
		jump mark-for-masquerade
		goto service-4YQRT2ES-default/web/tcp/http
	}
}
`

// iptablesLike is kube-proxy's iptables-mode masquerade chain and Docker's default NAT and filter rules, for
// iptables-nft-restore.
const iptablesLike = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
`

// withoutMasqd removes the table inet masqd block from an `nft list ruleset` listing.
func withoutMasqd(listing string) string {
	var b strings.Builder
	skip := false
	for line := range strings.Lines(listing) {
		switch {
		case line == "table inet masqd {\n":
			skip = true
		case skip && line == "}\n":
			skip = false
		case !skip:
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestReliabilityCoexist: with a kube-proxy-like nftables table, kube-proxy's and Docker's iptables-nft rules and
// a docker0 bridge already in the node, masqd's apply, its drift repairs and --cleanup leave everything else
// byte-identical: `nft list ruleset` with masqd's table taken out, and iptables-nft-save, before and after each
// step, counters aside (the node's own IGMP reports move them).
func TestReliabilityCoexist(t *testing.T) {
	testenv.RequireKernel(t)
	for _, bin := range []string{"iptables-nft-restore", "iptables-nft-save"} {
		testenv.RequireCommand(t, bin, "iptables")
	}
	lab := newLab(t, labOptions{})
	node := lab.Node
	node.Run(t, "ip", "link", "add", "docker0", "type", "bridge")
	node.Run(t, "ip", "addr", "add", "172.17.0.1/16", "dev", "docker0")
	node.Run(t, "ip", "link", "set", "docker0", "up")
	node.Run(t, "nft", "-f", writeNFT(t, kubeProxyLike))
	node.Run(t, "iptables-nft-restore", writeNFT(t, iptablesLike))

	// The node's own background packets (IGMP reports of docker0) move counters; everything else must match.
	chainCounters := regexp.MustCompile(`\[\d+:\d+\]`)
	save := func() string {
		var keep []string
		for line := range strings.Lines(node.Run(t, "iptables-nft-save")) {
			if !strings.HasPrefix(line, "#") { // "# Generated by ... on <date>"
				keep = append(keep, chainCounters.ReplaceAllString(line, "[0:0]"))
			}
		}
		return strings.Join(keep, "")
	}
	list := func() string { return zeroCounters(node.Run(t, "nft", "list", "ruleset")) }
	before, beforeIPT := list(), save()
	if !strings.Contains(before, "table ip kube-proxy") || !strings.Contains(before, "KUBE-POSTROUTING") || !strings.Contains(before, "\"docker0\"") {
		t.Fatalf("setup incomplete:\n%s", before)
	}
	var steps []string
	check := func(step string, strip bool) {
		t.Helper()
		after := list()
		if strip {
			if !strings.Contains(after, "table inet masqd {") {
				t.Fatalf("%s: masqd's table missing:\n%s", step, after)
			}
			after = withoutMasqd(after)
		}
		if after != before {
			t.Fatalf("%s changed other tables:\n--- after\n%s\n--- before\n%s", step, after, before)
		}
		if ipt := save(); ipt != beforeIPT {
			t.Fatalf("%s changed iptables-nft-save:\n%s\nwas\n%s", step, ipt, beforeIPT)
		}
		steps = append(steps, step)
	}

	path := writeConfig(t, cfgVPCOnly)
	mustMasqd(t, node, "--config="+path, "--once")
	check("masqd --once", true)

	w := watchCommits(t, node)
	a := startAgent(t, node, 9745, "--config="+path, "--log-level=info")
	a.waitStatus("/readyz", http.StatusOK)
	check("agent start", true)
	for _, tamper := range [][]string{
		{"delete", "element", "inet", "masqd", "nonmasq4", "{ 10.0.0.0/8 }"},
		{"add", "rule", "inet", "masqd", "postrouting", "counter"},
		{"delete", "table", "inet", "masqd"},
	} {
		node.Run(t, append([]string{"nft"}, tamper...)...)
		if c := w.next(t, "tamper", 10*time.Second); c.Process != "nft" {
			t.Fatalf("nft %v: commit %v", tamper, c)
		}
		if c := w.next(t, "repair", 10*time.Second); c.Process != "masqd" {
			t.Fatalf("nft %v: repair %v", tamper, c)
		}
		if got, want := kernelTable(t, node), dryRun(t, path); got != want {
			t.Fatalf("after nft %v: masqd's table\n%s\nwant\n%s", tamper, got, want)
		}
		check("repair of nft "+strings.Join(tamper, " "), true)
	}
	a.stop(syscall.SIGTERM) // the rules stay
	check("agent stop", true)
	mustMasqd(t, node, "--cleanup")
	check("masqd --cleanup", false)

	// Finally masqd works alongside them: the internet sees the node, the VPC the pod.
	mustMasqd(t, node, "--config="+path, "--once")
	checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
	reportFigures(t, "coexist", fmt.Sprintf("The node namespace held a kube-proxy-like `table ip kube-proxy` (sets, verdict maps, %d chains with base chains at nat prerouting/output/postrouting and filter forward), kube-proxy's iptables-nft `KUBE-POSTROUTING`/`KUBE-MARK-MASQ` chains, Docker's iptables-nft `DOCKER`/`DOCKER-USER` chains and `-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`, and a docker0 bridge. After each step — %s — `nft list ruleset` with masqd's table taken out, and `iptables-nft-save`, were byte-identical to before masqd ran, counters set to zero (after `--cleanup`, the whole listing). Then UDP and TCP from the pod: the internet saw the node, the VPC the pod.\n",
		strings.Count(kubeProxyLike, "\tchain "), strings.Join(steps, ", ")))
}
