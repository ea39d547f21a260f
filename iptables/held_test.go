package iptables

import (
	"slices"
	"strings"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// TestHeldRuleset: the chain CompileIPTables writes, read back as iptables-save prints it, has the
// non-masquerade destinations ruleset.Compile gives for the same config: the two backends' verdicts agree,
// so the conntrack flush after the first apply in iptables mode compares like with like.
func TestHeldRuleset(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		ipv6 bool
		opts IPTablesOptions
	}{
		{name: "defaults", yaml: ""},
		{name: "listed", yaml: "nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24, 198.51.100.7/32]\n"},
		{name: "masqLinkLocal", yaml: "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqLinkLocal: true\n"},
		{name: "masqueradeCIDRs carve holes", yaml: "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.96.0.0/12]\n"},
		{name: "clusterCIDRs", yaml: "nonMasqueradeCIDRs: [10.0.0.0/8]\nclusterCIDRs: [100.64.0.0/10]\n"},
		{name: "dual-stack", yaml: "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8::/32]\n", ipv6: true},
		{name: "dual-stack masqLinkLocalIPv6", yaml: "nonMasqueradeCIDRs: [2001:db8::/32]\nmasqLinkLocalIPv6: true\n", ipv6: true},
		{name: "--to-ports", yaml: "nonMasqueradeCIDRs: [192.0.2.0/24]\n",
			opts: IPTablesOptions{ToPorts: []ruleset.PortRange{{First: 1024, Last: 32767}, {First: 40000, Last: 65535}}, RandomFully: true, RandomFullySupported: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := config.Parse("f", []byte(tc.yaml), config.Options{EnableIPv6: tc.ipv6})
			if err != nil {
				t.Fatal(err)
			}
			rules := CompileIPTables(cfg, tc.opts)
			state := func(f Family) IPTablesChainState {
				if f == IPv6 && !rules.IPv6 {
					return IPTablesChainState{NatTable: true}
				}
				save := "*nat\n:POSTROUTING ACCEPT [0:0]\n:" + rules.Chain + " - [0:0]\n" + rules.JumpSaveLine() + "\n" +
					strings.Join(rules.SaveLines(f), "\n") + "\nCOMMIT\n"
				return parseSave(save, rules.Chain)
			}
			got, want := HeldRuleset(state(IPv4), state(IPv6)), ruleset.Compile(cfg, ruleset.Options{})
			if got.IPv6 != want.IPv6 || !slices.Equal(got.NonMasq4, want.NonMasq4) || !slices.Equal(got.NonMasq6, want.NonMasq6) {
				t.Errorf("HeldRuleset = %v %v (IPv6 %v), want %v %v (IPv6 %v)", got.NonMasq4, got.NonMasq6, got.IPv6,
					want.NonMasq4, want.NonMasq6, want.IPv6)
			}
			if v4, v6 := ruleset.Flipped(got, want); v4 != nil || v6 != nil {
				t.Errorf("Flipped between the backends' models = %v %v, want nothing", v4, v6)
			}
		})
	}
}
