package nft

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

// netns is an empty network namespace made for one test and removed after it, with a Conn into it.
type netns struct {
	*testenv.NS
	name string
	conn *Conn
}

// newNetns creates a network namespace (testenv.NewNS: a failure under MASQD_E2E=required when it may not).
func newNetns(t testing.TB) *netns {
	t.Helper()
	ns := testenv.NewNS(t, "nft")
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	conn := NewConn(int(f.Fd()))
	t.Cleanup(func() {
		conn.Close()
		f.Close()
	})
	return &netns{NS: ns, name: ns.Name, conn: conn}
}

// nft runs the nft command inside the namespace.
func (n *netns) nft(t testing.TB, args ...string) string {
	t.Helper()
	return n.Run(t, append([]string{"nft"}, args...)...)
}

// cidrs is testenv.CIDRs.
var cidrs = testenv.CIDRs

var rfc1918 = cidrs("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")

func mustApply(t *testing.T, c *Conn, r ruleset.Ruleset, want ruleset.Change) {
	t.Helper()
	got, err := c.Apply(r)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got != want {
		t.Fatalf("Apply: %s, want %s", got, want)
	}
}

// checkKernel asserts that the kernel holds want: nft's own listing is want's text, and reading the table back
// gives the same rules.
func checkKernel(t *testing.T, n *netns, want ruleset.Ruleset) {
	t.Helper()
	have, present, err := n.conn.Read()
	if err != nil || !present {
		t.Fatalf("Read: present %t, %v", present, err)
	}
	if !have.SameRules(want) {
		t.Fatalf("kernel holds\n%s\nforeign %q\nwant\n%s", have, have.Foreign, want)
	}
	listed := n.nft(t, "list", "table", "inet", ruleset.TableName)
	if text := have.String(); listed != text {
		t.Fatalf("nft list table differs from the read-back rendering:\n--- nft\n%s\n--- masqd\n%s", listed, text)
	}
	zeroed := regexp.MustCompile(`packets \d+ bytes \d+`).ReplaceAllString(listed, "packets 0 bytes 0")
	if zeroed != want.String() {
		t.Fatalf("nft list table differs from the desired rendering:\n--- nft\n%s\n--- want\n%s", listed, want)
	}
}

func TestApplyReadRoundTrip(t *testing.T) {
	for name, cfg := range map[string]config.Config{
		"default":       {NonMasqueradeCIDRs: rfc1918},
		"empty":         {},
		"masqLinkLocal": {MasqLinkLocal: true},
		"ipv6":          {EnableIPv6: true, NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "2001:db8::/32", "fd00::/8")},
		"masqueradeCIDRs": {
			NonMasqueradeCIDRs: rfc1918,
			MasqueradeCIDRs:    cidrs("10.2.1.100/32", "169.254.169.254/32"),
		},
		"top of space": {EnableIPv6: true, NonMasqueradeCIDRs: cidrs("240.0.0.0/4", "0.0.0.0/8", "ff00::/8", "::/128")},
	} {
		t.Run(name, func(t *testing.T) {
			n := newNetns(t)
			want := ruleset.Compile(cfg, ruleset.Options{RandomFully: true})
			mustApply(t, n.conn, want, ruleset.Rebuilt)
			checkKernel(t, n, want)
			mustApply(t, n.conn, want, ruleset.Unchanged)
		})
	}
}

func TestApplyDelta(t *testing.T) {
	n := newNetns(t)
	a := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	mustApply(t, n.conn, a, ruleset.Rebuilt)
	// Traffic is not needed to move a counter here: the counter must survive an in-place update, so give it
	// a value the kernel did not invent by resetting nothing and checking it is still zero after the update.
	steps := []struct {
		cfg  config.Config
		want ruleset.Change
	}{
		{config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")}, ruleset.Updated},
		{config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "11.0.0.0/8")}, ruleset.Updated},               // merged neighbours
		{config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8")}, ruleset.Updated}, // end moves
		{config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8"), MasqueradeCIDRs: cidrs("10.2.1.100/32")}, ruleset.Updated},
		{config.Config{}, ruleset.Updated},
		{config.Config{NonMasqueradeCIDRs: rfc1918, EnableIPv6: true}, ruleset.Rebuilt}, // a new set and rule
		{config.Config{NonMasqueradeCIDRs: cidrs("2001:db8::/32"), EnableIPv6: true}, ruleset.Updated},
		{config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Rebuilt},
	}
	for i, s := range steps {
		want := ruleset.Compile(s.cfg, ruleset.Options{RandomFully: true})
		got, err := n.conn.Apply(want)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != s.want {
			t.Errorf("step %d: %s, want %s", i, got, s.want)
		}
		checkKernel(t, n, want)
	}
	// Changing the masquerade flags rebuilds.
	plain := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: false})
	mustApply(t, n.conn, plain, ruleset.Rebuilt)
	checkKernel(t, n, plain)
}

// TestApplyToPorts walks the table through --to-ports changes: each is a rebuild of the chain that keeps the
// leading rules still right (and their counters), each reads back as applied, and a port rule someone
// changed is seen and repaired.
func TestApplyToPorts(t *testing.T) {
	n := newNetns(t)
	cfg := config.Config{NonMasqueradeCIDRs: rfc1918, EnableIPv6: true}
	two := []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}
	steps := []struct {
		name string
		opts ruleset.Options
		want ruleset.Change
	}{
		{"none", ruleset.Options{RandomFully: true}, ruleset.Rebuilt},
		{"two ranges", ruleset.Options{RandomFully: true, ToPorts: two}, ruleset.Rebuilt},
		{"the same", ruleset.Options{RandomFully: true, ToPorts: two}, ruleset.Unchanged},
		{"plain masquerade", ruleset.Options{ToPorts: two}, ruleset.Rebuilt},
		{"one port", ruleset.Options{ToPorts: []ruleset.PortRange{{First: 40000, Last: 40000}}}, ruleset.Rebuilt},
		{"three ranges", ruleset.Options{RandomFully: true, ToPorts: []ruleset.PortRange{{First: 1024, Last: 1100}, {First: 2000, Last: 2300}, {First: 5000, Last: 5000}}}, ruleset.Rebuilt},
		{"none again", ruleset.Options{RandomFully: true}, ruleset.Rebuilt},
	}
	for _, s := range steps {
		want := ruleset.Compile(cfg, s.opts)
		mustApply(t, n.conn, want, s.want)
		checkKernel(t, n, want)
		have, _, err := n.conn.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(have.PortCounters4) != 3*len(s.opts.ToPorts) || len(have.PortCounters6) != 3*len(s.opts.ToPorts) {
			t.Errorf("%s: read %d and %d port rule counters, want %d per family", s.name,
				len(have.PortCounters4), len(have.PortCounters6), 3*len(s.opts.ToPorts))
		}
	}

	// A port rule changed behind masqd's back (here its range) is foreign, and the next Apply repairs it.
	want := ruleset.Compile(cfg, ruleset.Options{RandomFully: true, ToPorts: two})
	mustApply(t, n.conn, want, ruleset.Rebuilt)
	listed := n.nft(t, "-a", "list", "chain", "inet", ruleset.TableName, ruleset.ChainName)
	handle := regexp.MustCompile(`meta l4proto udp counter .* # handle (\d+)`).FindStringSubmatch(listed)
	if handle == nil {
		t.Fatalf("no UDP catch-range rule in\n%s", listed)
	}
	n.nft(t, "replace", "rule", "inet", ruleset.TableName, ruleset.ChainName, "handle", handle[1],
		"ip", "daddr", "!=", "@"+ruleset.Set4Name, "fib", "daddr", "type", "!=", "local", "meta", "l4proto", "udp",
		"counter", "masquerade", "to", ":32768-65000", "random,fully-random")
	have, _, err := n.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	if have.SameRules(want) || len(have.Foreign) == 0 {
		t.Fatalf("Read did not see the changed port rule: foreign %q", have.Foreign)
	}
	n.conn.Forget()
	mustApply(t, n.conn, want, ruleset.Refreshed)
	checkKernel(t, n, want)
}

func TestReadSeesForeignObjects(t *testing.T) {
	n := newNetns(t)
	want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	for _, tamper := range [][]string{
		{"add", "rule", "inet", ruleset.TableName, ruleset.ChainName, "counter"},
		{"add", "set", "inet", ruleset.TableName, "extra", "{ type ipv4_addr; }"},
		{"add", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 198.51.100.0/24 }"},
		{"delete", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 10.0.0.0/8 }"},
		{"flush", "chain", "inet", ruleset.TableName, ruleset.ChainName},
		{"delete", "table", "inet", ruleset.TableName},
		{"add", "chain", "inet", ruleset.TableName, "other"},
	} {
		mustApply(t, n.conn, want, changeFor(t, n, want))
		n.nft(t, tamper...)
		have, _, err := n.conn.Read()
		if err != nil {
			t.Fatal(err)
		}
		if have.SameRules(want) {
			t.Errorf("after nft %s: Read still reports the desired rules", strings.Join(tamper, " "))
		}
		if _, err := n.conn.Apply(want); err != nil {
			t.Fatalf("repair after nft %s: %v", strings.Join(tamper, " "), err)
		}
		checkKernel(t, n, want)
	}
}

// changeFor is the Change an Apply of want makes now: Unchanged when the kernel holds it already.
func changeFor(t *testing.T, n *netns, want ruleset.Ruleset) ruleset.Change {
	t.Helper()
	have, present, err := n.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	if !present {
		return ruleset.Rebuilt
	}
	if have.SameRules(want) {
		return ruleset.Unchanged
	}
	return ruleset.Updated
}

func TestDeleteLeavesOtherTables(t *testing.T) {
	n := newNetns(t)
	n.nft(t, "add", "table", "ip", "other")
	n.nft(t, "add", "chain", "ip", "other", "post", "{ type nat hook postrouting priority 100; }")
	n.nft(t, "add", "rule", "ip", "other", "post", "ip daddr 192.0.2.1 masquerade")
	before := n.nft(t, "list", "ruleset")
	mustApply(t, n.conn, ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{}), ruleset.Rebuilt)
	if err := n.conn.Delete(); err != nil {
		t.Fatal(err)
	}
	if after := n.nft(t, "list", "ruleset"); after != before {
		t.Fatalf("ruleset after apply+delete:\n%s\nwant\n%s", after, before)
	}
	if err := n.conn.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

// TestScale pins the two google/nftables v0.3.0 bugs worked around in this package: a batch of 100,000
// prefixes per family must commit (no EMSGSIZE), and every element must be there on read-back (no silent
// truncation of a message over 64 KiB).
func TestScale(t *testing.T) {
	n := newNetns(t)
	const count = 100_000
	var cfg config.Config
	cfg.EnableIPv6 = true
	for i := range count {
		// Disjoint, non-adjacent /30s and /126s, so nothing merges.
		v4 := netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0})
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs,
			config.CIDR{Prefix: netip.PrefixFrom(v4, 31)},
			config.CIDR{Prefix: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", i>>8, i&0xff<<1))})
	}
	want := ruleset.Compile(cfg, ruleset.Options{RandomFully: true})
	if len(want.NonMasq4) != count+1 || len(want.NonMasq6) != count+1 { // +1: link-local
		t.Fatalf("compiled %d/%d intervals, want %d each", len(want.NonMasq4), len(want.NonMasq6), count+1)
	}
	mustApply(t, n.conn, want, ruleset.Rebuilt)
	have, _, err := n.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(have.NonMasq4) != count+1 || len(have.NonMasq6) != count+1 || !have.SameRules(want) {
		t.Fatalf("read back %d IPv4 and %d IPv6 intervals (foreign %q), want %d each",
			len(have.NonMasq4), len(have.NonMasq6), have.Foreign, count+1)
	}
	// One prefix more is an in-place update of two elements.
	cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: netip.MustParsePrefix("203.0.113.0/24")})
	want = ruleset.Compile(cfg, ruleset.Options{RandomFully: true})
	mustApply(t, n.conn, want, ruleset.Updated)
	if have, _, err = n.conn.Read(); err != nil || !have.SameRules(want) {
		t.Fatalf("after one more prefix: SameRules false (%v)", err)
	}
}

// TestApplyRepairsWhatItWasNotTold: someone else's change that nobody reported to the Conn (no Forget, no
// monitor: a monitor that missed it) is found by the next Apply, because the ruleset generation moved, and
// undone: the resync's safety net. A small table is read and only what differs is sent; a large one
// (beyond readLimit) has its sets written whole, without reading them. Until then InSync says the kernel is
// not known to hold the ruleset; afterwards it says it is, without a read.
func TestApplyRepairsWhatItWasNotTold(t *testing.T) {
	var large []config.CIDR
	for i := range readLimit {
		large = append(large, config.CIDR{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{11 + byte(i>>16), byte(i >> 8), byte(i), 0}), 25)})
	}
	for _, tc := range []struct {
		name  string
		cidrs []config.CIDR
		want  []ruleset.Change // after each tamper below
	}{
		{"small", rfc1918, []ruleset.Change{ruleset.Updated, ruleset.Updated, ruleset.Refreshed, ruleset.Rebuilt}},
		{"beyond readLimit", append(large, rfc1918...), []ruleset.Change{ruleset.Refreshed, ruleset.Refreshed, ruleset.Refreshed, ruleset.Rebuilt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetns(t)
			want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: tc.cidrs, EnableIPv6: true}, ruleset.Options{RandomFully: true})
			mustApply(t, n.conn, want, ruleset.Rebuilt)
			if ok, err := n.conn.InSync(want); err != nil || !ok {
				t.Fatalf("InSync after Apply: %t, %v", ok, err)
			}
			mustApply(t, n.conn, want, ruleset.Unchanged)
			for i, tamper := range [][]string{
				{"delete", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 172.16.0.0/12 }"},
				{"add", "element", "inet", ruleset.TableName, ruleset.Set6Name, "{ 2001:db8::/32 }"},
				{"flush", "chain", "inet", ruleset.TableName, ruleset.ChainName},
				{"delete", "table", "inet", ruleset.TableName},
			} {
				n.nft(t, tamper...)
				if ok, err := n.conn.InSync(want); err != nil || ok {
					t.Fatalf("%v: InSync says %t, %v; want false: the generation moved", tamper, ok, err)
				}
				mustApply(t, n.conn, want, tc.want[i])
				checkKernel(t, n, want)
				if ok, err := n.conn.InSync(want); err != nil || !ok {
					t.Fatalf("%v: InSync after the repair: %t, %v", tamper, ok, err)
				}
			}
		})
	}
}
