package nft

import (
	"net/netip"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

// snatRulesets are the egressInterfaces / snatTo / snatToInterface shapes: the rulesets of ruleset's golden
// configs, compiled as its golden test compiles them.
func snatRulesets(t *testing.T) map[string]ruleset.Ruleset {
	read := func(name string) config.Config {
		return testenv.ParseFile(t, filepath.Join("..", "ruleset", "testdata", name+".yaml"), config.Options{})
	}
	ports := []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 40000, Last: 40000}}
	egressOnly := read("snat")
	egressOnly.SNATTo = nil
	return map[string]ruleset.Ruleset{
		"snat":          ruleset.Compile(read("snat"), ruleset.Options{RandomFully: true}),
		"snat-to-ports": ruleset.Compile(read("snat"), ruleset.Options{ToPorts: ports}),
		"snat-interface": ruleset.Compile(read("snat-interface"), ruleset.Options{RandomFully: true,
			Interface: ruleset.InterfaceAddrs{Name: "eth0", V4: netip.MustParseAddr("192.0.2.20")}}),
		"snat-interface-v6": ruleset.Compile(read("snat-interface"), ruleset.Options{
			Interface: ruleset.InterfaceAddrs{Name: "eth0", V4: netip.MustParseAddr("192.0.2.20"), V6: netip.MustParseAddr("2001:db8::20")}}),
		"egress": ruleset.Compile(egressOnly, ruleset.Options{RandomFully: true, ToPorts: ports[:1]}),
	}
}

// TestApplyReadSNAT: each shape applied, listed by nft exactly as its String (so --dry-run is what nft
// lists), read back as the same rules, and applied again as nothing to do.
func TestApplyReadSNAT(t *testing.T) {
	for name, want := range snatRulesets(t) {
		t.Run(name, func(t *testing.T) {
			n := newNetns(t)
			mustApply(t, n.conn, want, ruleset.Rebuilt)
			checkKernel(t, n, want)
			mustApply(t, n.conn, want, ruleset.Unchanged)
		})
	}
}

// TestSNATEndsWhereFakeDoes: turning egressInterfaces, snatTo and a followed address on, changing and off,
// the Conn and the Fake agree on the Change and on the table nft lists.
func TestSNATEndsWhereFakeDoes(t *testing.T) {
	rs := snatRulesets(t)
	plain := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918, EnableIPv6: true}, ruleset.Options{RandomFully: true})
	moreEgress := rs["snat"]
	moreEgress.Egress = []string{"ens5", "eth0", "up1"}
	steps := []ruleset.Ruleset{plain, rs["snat"], rs["snat"], moreEgress, rs["snat"], rs["snat-interface"],
		rs["snat-interface-v6"], rs["snat-to-ports"], rs["egress"], plain}
	n := newNetns(t)
	var fake ruleset.Fake
	zeroed := regexp.MustCompile(`packets \d+ bytes \d+`)
	for i, want := range steps {
		got, err := n.conn.Apply(want)
		if err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		fakeGot, err := fake.Apply(want)
		if err != nil {
			t.Fatalf("step %d: Fake.Apply: %v", i, err)
		}
		if got != fakeGot {
			t.Errorf("step %d: Conn.Apply says %s, Fake.Apply says %s", i, got, fakeGot)
		}
		listed := zeroed.ReplaceAllString(n.nft(t, "list", "table", "inet", ruleset.TableName), "packets 0 bytes 0")
		if dump := fake.Dump(); listed != dump {
			t.Fatalf("step %d: nft lists\n%s\nthe Fake dumps\n%s", i, listed, dump)
		}
		have, _, err := n.conn.Read()
		if err != nil || !have.SameRules(want) {
			t.Fatalf("step %d: read back %v (foreign %q), want\n%s", i, err, have.Foreign, want)
		}
	}
	if c := fake.Plans[3].Change; c != ruleset.Updated {
		t.Errorf("adding an egress interface: %s, want an element update", c)
	}
}
