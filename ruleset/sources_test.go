package ruleset

import (
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
)

// TestSources: masqueradeSourceCIDRs compiles to a sources set per family read by every rule; a change of
// its prefixes alone is an element update of that set; turning it on or off is a change of shape.
func TestSources(t *testing.T) {
	plain := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n", config.Options{}), Options{RandomFully: true})
	pods := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeSourceCIDRs: [10.244.0.0/16, 10.245.0.0/16]\n",
		config.Options{EnableIPv6: true}), Options{RandomFully: true})
	morePods := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeSourceCIDRs: [10.244.0.0/16, 10.250.0.0/16]\n",
		config.Options{EnableIPv6: true}), Options{RandomFully: true})

	if !pods.Sources || len(pods.Src4) != 1 || pods.Src4[0].String() != "10.244.0.0/15" || len(pods.Src6) != 0 {
		t.Fatalf("compiled sources %t %v %v, want one IPv4 interval 10.244.0.0/15 and an empty IPv6 set", pods.Sources, pods.Src4, pods.Src6)
	}
	for _, r := range pods.Rules() {
		if !r.Sources {
			t.Errorf("rule %s does not read the sources set", r)
		}
	}
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"10.244.1.2", "198.51.100.10", true},
		{"10.245.9.9", "198.51.100.10", true},
		{"10.244.1.2", "10.1.2.3", false}, // non-masquerade destination
		{"203.0.113.1", "198.51.100.10", false},
		{"2001:db8:1::2", "2001:db8:ff00::10", false}, // no IPv6 source listed: nothing masqueraded
	} {
		if got := pods.MasqueradesFrom(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)); got != tc.want {
			t.Errorf("MasqueradesFrom(%s, %s) = %t, want %t", tc.src, tc.dst, got, tc.want)
		}
	}
	if !plain.MasqueradesFrom(netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("198.51.100.10")) {
		t.Errorf("without sources, every source is masqueraded")
	}

	var f Fake
	for i, step := range []struct {
		want   Ruleset
		change Change
	}{
		{pods, Rebuilt}, {pods, Unchanged}, {morePods, Updated}, {plain, Rebuilt}, {pods, Rebuilt},
	} {
		got, err := f.Apply(step.want)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != step.change {
			t.Errorf("step %d: %s, want %s", i, got, step.change)
		}
		if have, _ := f.Read(); !have.SameRules(step.want) {
			t.Errorf("step %d: the Fake holds\n%s\nwant\n%s", i, have, step.want)
		}
	}
	if plain.SameRules(pods) || pods.SameRules(morePods) {
		t.Errorf("SameRules ignores the sources")
	}
}
