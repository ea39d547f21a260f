package nft

import (
	"net/netip"
	"regexp"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// TestConnEndsWhereFakeDoes gives a Conn and a ruleset.Fake the same Rulesets and the same changes by
// someone else, and checks after every step that both report the same Change and that nft lists exactly
// what the Fake dumps: the Fake, which agent and status tests use without root, is the kernel's model.
func TestConnEndsWhereFakeDoes(t *testing.T) {
	v4 := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	more := ruleset.Compile(config.Config{NonMasqueradeCIDRs: append(cidrs("192.0.2.0/24", "198.51.100.0/24"), rfc1918...)},
		ruleset.Options{RandomFully: true})
	dual := ruleset.Compile(config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "2001:db8::/32"), EnableIPv6: true},
		ruleset.Options{RandomFully: true})
	ports := ruleset.Compile(config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "2001:db8::/32"), EnableIPv6: true},
		ruleset.Options{ToPorts: []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}})
	// masqueradeSourceCIDRs: a second set per family, read by every rule.
	sources := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918, MasqueradeSourceCIDRs: cidrs("10.244.0.0/16")},
		ruleset.Options{RandomFully: true})
	moreSources := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918, MasqueradeSourceCIDRs: cidrs("10.244.0.0/16", "10.250.0.0/16")},
		ruleset.Options{RandomFully: true})
	dualSources := ruleset.Compile(config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "2001:db8::/32"), EnableIPv6: true,
		MasqueradeSourceCIDRs: cidrs("10.244.0.0/16", "2001:db8:1::/64")}, ruleset.Options{ToPorts: []ruleset.PortRange{{First: 1024, Last: 65535}}})
	interval := func(p string) []ruleset.Interval {
		return []ruleset.Interval{ruleset.PrefixInterval(netip.MustParsePrefix(p))}
	}
	type tamper struct {
		nft  []string
		fake []ruleset.Op
	}
	steps := []struct {
		apply  *ruleset.Ruleset
		tamper *tamper
	}{
		{apply: &v4},
		{apply: &v4},
		{apply: &more},
		{apply: &dual},
		{tamper: &tamper{
			[]string{"delete", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 10.0.0.0/8 }"},
			[]ruleset.Op{{Kind: ruleset.DeleteElements, Set: ruleset.Set4Name, Elements: interval("10.0.0.0/8")}},
		}},
		{apply: &dual},
		{apply: &ports},
		{tamper: &tamper{
			[]string{"flush", "chain", "inet", ruleset.TableName, ruleset.ChainName},
			[]ruleset.Op{{Kind: ruleset.FlushChain, Chain: ruleset.ChainName}},
		}},
		{apply: &ports},
		{apply: &v4},
		{tamper: &tamper{
			[]string{"delete", "table", "inet", ruleset.TableName},
			[]ruleset.Op{{Kind: ruleset.DeleteTable}},
		}},
		{apply: &more},
		{apply: &sources},
		{apply: &sources},
		{apply: &moreSources},
		{tamper: &tamper{
			[]string{"delete", "element", "inet", ruleset.TableName, ruleset.Src4Name, "{ 10.244.0.0/16 }"},
			[]ruleset.Op{{Kind: ruleset.DeleteElements, Set: ruleset.Src4Name, Elements: interval("10.244.0.0/16")}},
		}},
		{apply: &moreSources},
		{tamper: &tamper{
			[]string{"delete", "table", "inet", ruleset.TableName},
			[]ruleset.Op{{Kind: ruleset.DeleteTable}},
		}},
		{apply: &dualSources},
		{apply: &sources},
		{apply: &v4},
	}
	n := newNetns(t)
	var fake ruleset.Fake
	zeroed := regexp.MustCompile(`packets \d+ bytes \d+`)
	for i, s := range steps {
		if s.tamper != nil {
			n.nft(t, s.tamper.nft...)
			if err := fake.Tamper(s.tamper.fake...); err != nil {
				t.Fatalf("step %d: Fake.Tamper: %v", i, err)
			}
		} else {
			got, err := n.conn.Apply(*s.apply)
			if err != nil {
				t.Fatalf("step %d: Apply: %v", i, err)
			}
			want, err := fake.Apply(*s.apply)
			if err != nil {
				t.Fatalf("step %d: Fake.Apply: %v", i, err)
			}
			if got != want {
				t.Errorf("step %d: Conn.Apply says %s, Fake.Apply says %s", i, got, want)
			}
		}
		listed := ""
		if _, present, err := n.conn.Read(); err != nil {
			t.Fatal(err)
		} else if present {
			listed = zeroed.ReplaceAllString(n.nft(t, "list", "table", "inet", ruleset.TableName), "packets 0 bytes 0")
		}
		if dump := fake.Dump(); listed != dump {
			t.Fatalf("step %d: nft lists\n%s\nthe Fake dumps\n%s", i, listed, dump)
		}
	}
}
