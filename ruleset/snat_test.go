package ruleset

import (
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
)

// TestSNAT: egressInterfaces compiles to the uplinks set read by every rule; snatTo and a resolved
// snatToInterface to each family's snat address, a family without one keeping masquerade; adding an
// interface is an element update, a new address a change of rules.
func TestSNAT(t *testing.T) {
	v6 := config.Options{EnableIPv6: true}
	plain := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n", v6), Options{RandomFully: true})
	snat := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\negressInterfaces: [up1]\nsnatTo: [192.0.2.10]\n", v6), Options{RandomFully: true})
	more := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\negressInterfaces: [up1, eth0]\nsnatTo: [192.0.2.10]\n", v6), Options{RandomFully: true})
	ifCfg := parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nsnatToInterface: up1\n", v6)
	ifA := Compile(ifCfg, Options{Interface: InterfaceAddrs{Name: "up1", V4: netip.MustParseAddr("198.51.100.2")}})
	ifB := Compile(ifCfg, Options{Interface: InterfaceAddrs{Name: "up1", V4: netip.MustParseAddr("198.51.100.3")}})
	unresolved := Compile(ifCfg, Options{Interface: InterfaceAddrs{Name: "other", V4: netip.MustParseAddr("198.51.100.3")}})

	if len(snat.Egress) != 1 || snat.Egress[0] != "up1" || snat.SNAT4.String() != "192.0.2.10" || snat.SNAT6.IsValid() {
		t.Fatalf("compiled egress %v, snat %v %v; want [up1], 192.0.2.10 and IPv6 masqueraded", snat.Egress, snat.SNAT4, snat.SNAT6)
	}
	if got := snat.SNAT(netip.MustParseAddr("203.0.113.1")); got.String() != "192.0.2.10" {
		t.Errorf("SNAT(IPv4) = %v", got)
	}
	for _, r := range snat.Rules() {
		if !r.Egress || r.IPv6 == r.SNAT.IsValid() {
			t.Errorf("rule %s: want oifname @%s, snat for IPv4 only", r, EgressName)
		}
	}
	if ifA.SNAT4.String() != "198.51.100.2" || unresolved.SNAT4.IsValid() {
		t.Errorf("snatToInterface: resolved %v, for another interface %v; want 198.51.100.2 and masquerade", ifA.SNAT4, unresolved.SNAT4)
	}
	if name, ok := IfnameOf(ifnameInterval("eth0.100")); !ok || name != "eth0.100" {
		t.Errorf("IfnameOf(ifnameInterval(eth0.100)) = %q, %t", name, ok)
	}
	if _, ok := IfnameOf(PrefixInterval(netip.MustParsePrefix("2001:db8::/64"))); ok {
		t.Errorf("IfnameOf takes a range of addresses for a name")
	}

	var f Fake
	for i, step := range []struct {
		want   Ruleset
		change Change
	}{
		{plain, Rebuilt}, {snat, Rebuilt}, {snat, Unchanged}, {more, Updated}, {snat, Updated},
		{ifA, Rebuilt}, {ifB, Rebuilt}, {plain, Rebuilt},
	} {
		got, err := f.Apply(step.want)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != step.change {
			t.Errorf("step %d: %s, want %s", i, got, step.change)
		}
		if have, _ := f.Read(); !have.SameRules(step.want) || f.Dump() != step.want.String() {
			t.Errorf("step %d: the Fake holds\n%s\nforeign %q\nwant\n%s", i, f.Dump(), have.Foreign, step.want)
		}
	}
	if snat.SameRules(more) || ifA.SameRules(ifB) || plain.SameRules(snat) {
		t.Errorf("SameRules ignores the interfaces or the snat address")
	}
}
