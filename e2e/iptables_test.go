//go:build linux

package e2e

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

// TestIPTablesScenarios runs the core packet scenarios with ip-masq-agent's chain through iptables-nft
// and iptables-legacy, and with masqd's nftables table, one after the other in the same lab: every
// backend must give every destination the same source address.
func TestIPTablesScenarios(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	lab := newLab(t, labOptions{Firewall: true})
	cases := []struct {
		name   string
		cfg    config.Config
		expect []expect
	}{
		{"default config", config.Default(config.Options{}), []expect{
			{lab.Internet, lab.NodeIP},
			{lab.VPC, lab.PodIP},
			{lab.Metadata, lab.PodIP},
			{lab.NodeIP, lab.PodIP},
			{lab.NodeLocal, lab.PodIP},
			{lab.Internet6, lab.PodIP6}, // no IPv6 rules without --enable-ipv6
		}},
		{"IPv6", parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8:100::/48]\n", config.Options{EnableIPv6: true}), []expect{
			{lab.Internet, lab.NodeIP},
			{lab.VPC, lab.PodIP},
			{lab.Internet6, lab.NodeIP6},
			{lab.VPC6, lab.PodIP6},
			{lab.NodeLocal6, lab.PodIP6},
			{lab.NodeIP6, lab.PodIP6},
		}},
		{"masqueradeCIDRs endpoint", parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.2.1.100/32]\n", config.Options{}), []expect{
			{lab.Endpoint, lab.NodeIP}, // through the firewall that drops pod IPs
			{lab.VPC, lab.PodIP},
			{lab.Internet, lab.NodeIP},
		}},
		{"masqLinkLocal", parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqLinkLocal: true\n", config.Options{}), []expect{
			{lab.Metadata, lab.NodeIP},
			{lab.VPC, lab.PodIP},
			{lab.Internet, lab.NodeIP},
		}},
	}
	for _, c := range cases {
		for _, b := range allBackends {
			t.Run(c.name+"/"+b.name, func(t *testing.T) {
				remove := b.apply(t, lab, c.cfg, nil)
				defer remove()
				checkSources(t, lab, c.expect)
			})
		}
	}
}

// oldAgentPayload is what ip-masq-agent v2 writes with its default config, --enable-ipv6 and --random-fully,
// copied from its iptables-restore input (family "v4" or "v6"); the jump is added with iptables -A after it.
func oldAgentPayload(t *testing.T, family string) []byte {
	t.Helper()
	b, err := os.ReadFile("../iptables/testdata/upstream/default-random-fully." + family)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	oldAgentJumpComment = "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain"
)

// installOldAgent writes ip-masq-agent's chains into the node with one iptables variant, as the agent does.
func installOldAgent(t *testing.T, lab *Lab, variant string) {
	t.Helper()
	for bin, payload := range map[string][]byte{"iptables-" + variant: oldAgentPayload(t, "v4"), "ip6tables-" + variant: oldAgentPayload(t, "v6")} {
		cmd := exec.Command("ip", "netns", "exec", lab.Node.Name, bin+"-restore", "--noflush", "-w", "5")
		cmd.Stdin = bytes.NewReader(payload)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s-restore: %v: %s", bin, err, out)
		}
		lab.Node.Run(t, bin, "-w", "5", "-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", oldAgentJumpComment,
			"-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "IP-MASQ-AGENT")
	}
}

// TestMigrationUnderTraffic takes a node from ip-masq-agent (in iptables-legacy or iptables-nft) to
// masqd's nftables table while the pod keeps opening new flows to the internet over IPv4 and IPv6: not
// one may arrive with the pod's address, none may be lost, and afterwards only masqd's rules are left.
func TestMigrationUnderTraffic(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	for _, variant := range []string{iptables.VariantLegacy, iptables.VariantNFT} {
		t.Run(variant, func(t *testing.T) {
			m := startMigration(t, variant)
			lab := m.lab
			// masqd's own rules, live and verified, before anything of the old agent goes.
			f, err := lab.Node.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			conn := nft.NewConn(int(f.Fd()))
			defer conn.Close()
			want := ruleset.Compile(config.Default(config.Options{EnableIPv6: true}), ruleset.Options{RandomFully: true})
			if _, err := conn.Apply(want); err != nil {
				t.Fatal(err)
			}
			if have, present, err := conn.Read(); err != nil || !present || !have.SameRules(want) {
				t.Fatalf("masqd's table not verified: present %t, %v", present, err)
			}
			m.waitProbes(t)

			removed, err := iptables.RemoveOldAgentChains(nsPath(lab.Node), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantRemoved := []string{"iptables-" + variant + " nat IP-MASQ-AGENT", "ip6tables-" + variant + " nat IP-MASQ-AGENT"}
			if !slices.Equal(removed, wantRemoved) {
				t.Errorf("removed %q, want %q", removed, wantRemoved)
			}
			m.finish(t)
			checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.Internet6, lab.NodeIP6}, {lab.VPC, lab.PodIP}})
		})
	}
}

// TestToPortsDistribution sends many UDP flows from the pod to one internet address with --to-ports
// 10000-10999,20000-22999 and checks, for each backend, that every flow left from a port in the ranges
// and that the ranges got flows in proportion to their sizes (1:3).
func TestToPortsDistribution(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	lab := newLab(t, labOptions{})
	ranges := []ruleset.PortRange{{First: 10000, Last: 10999}, {First: 20000, Last: 22999}}
	const flows = 1000
	for _, b := range allBackends {
		t.Run(b.name, func(t *testing.T) {
			// A server port of its own per backend, so no flow meets the conntrack entries of the last.
			dst := startPortEcho(t, lab.Outside, lab.Internet)
			remove := b.apply(t, lab, config.Default(config.Options{}), ranges)
			defer remove()
			seen, err := udpFlows(lab.Pod, dst, flows)
			if err != nil {
				t.Fatalf("after %d flows: %v", len(seen), err)
			}
			counts := make([]int, len(ranges))
			for _, s := range seen {
				if s.Addr() != lab.NodeIP {
					t.Fatalf("flow from %s, want the node address %s", s, lab.NodeIP)
				}
				i := slices.IndexFunc(ranges, func(r ruleset.PortRange) bool { return s.Port() >= r.First && s.Port() <= r.Last })
				if i < 0 {
					t.Fatalf("flow from port %d, outside %v", s.Port(), ranges)
				}
				counts[i]++
			}
			total := ranges[0].Size() + ranges[1].Size()
			chi2 := 0.0
			for i, r := range ranges {
				exp := float64(flows*r.Size()) / float64(total)
				chi2 += math.Pow(float64(counts[i])-exp, 2) / exp
				if math.Abs(float64(counts[i])-exp) > 0.25*exp {
					t.Errorf("range %s: %d flows, want %.0f ± 25%%", r, counts[i], exp)
				}
			}
			t.Logf("%s: %d flows: %d in %s, %d in %s (expected %d and %d); chi-square %.2f", b.name, flows,
				counts[0], ranges[0], counts[1], ranges[1], flows/4, 3*flows/4, chi2)
			// One degree of freedom: above 15.14 happens by chance once in ten thousand runs; a split that
			// ignored the sizes (500:500) would score 333.
			if chi2 > 15.14 {
				t.Errorf("chi-square %.2f > 15.14: the split is not proportional to range size", chi2)
			}
		})
	}
}
