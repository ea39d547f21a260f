package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// applyPortsTable builds a table like masqd's with the --to-ports rules in front of each family's
// catch-all rule, through a MasqPortsTransport, as the integration into Conn would.
func applyPortsTable(t *testing.T, netnsFD int, ranges []PortRange, randomFully bool) {
	t.Helper()
	tr := NewMasqPortsTransport(netnsFD, randomFully)
	defer tr.Close()
	nc, err := nftables.New(tr.ConnOption())
	if err != nil {
		t.Fatal(err)
	}
	table := nc.AddTable(masqdTable())
	s4, s6 := sets(true)
	for _, s := range []*nftables.Set{s4, s6} {
		if err := nc.AddSet(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := addElements(nc, s4, []Interval{PrefixInterval(linkLocal4)}); err != nil {
		t.Fatal(err)
	}
	chain := nc.AddChain(&nftables.Chain{Name: ChainName, Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: ptr(nftables.ChainPolicyAccept)})
	for _, fam := range []struct {
		proto byte
		set   *nftables.Set
	}{{unix.NFPROTO_IPV4, s4}, {unix.NFPROTO_IPV6, s6}} {
		catchAll := ruleExprs(fam.proto, fam.set, randomFully)
		for _, r := range ToPortsRules(ranges, randomFully) {
			// masqd's matches: nfproto, daddr not in the set, fib daddr type not local.
			exprs := append(append([]expr.Any{}, catchAll[:6]...), r.Exprs...)
			nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
		}
		nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: catchAll})
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// TestToPortsRulesKernel applies the --to-ports rules and checks that nft lists exactly the rules' Text
// behind masqd's matches, with the flags the transport restores, and that they read back through it.
func TestToPortsRulesKernel(t *testing.T) {
	n := newNetns(t)
	ranges := []PortRange{{1024, 1100}, {2000, 2300}}
	applyPortsTable(t, n.conn.netns, ranges, true)

	var want []string
	for _, family := range []string{"ip daddr != @nonmasq4", "ip6 daddr != @nonmasq6"} {
		for _, r := range ToPortsRules(ranges, true) {
			want = append(want, family+" fib daddr type != local "+r.Text)
		}
		want = append(want, family+" fib daddr type != local counter packets 0 bytes 0 masquerade random,fully-random")
	}
	var got []string
	listed := n.nft(t, "list", "chain", "inet", TableName, ChainName)
	for _, line := range strings.Split(listed, "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, "masquerade") {
			got = append(got, line)
		}
	}
	if join(got) != join(want) {
		t.Errorf("nft list chain, -want +got:\n%s", lineDiff(join(want), join(got)))
	}

	// Reading back through the transport, as Conn.Read would.
	tr := NewMasqPortsTransport(n.conn.netns, true)
	defer tr.Close()
	nc, err := nftables.New(tr.ConnOption())
	if err != nil {
		t.Fatal(err)
	}
	rules, err := nc.GetRules(masqdTable(), &nftables.Chain{Name: ChainName, Table: masqdTable()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2*(3*len(ranges)+1) {
		t.Fatalf("read %d rules, want %d", len(rules), 2*(3*len(ranges)+1))
	}
	m, ok := rules[0].Exprs[len(rules[0].Exprs)-1].(*expr.Masq)
	if !ok || !m.ToPorts || !m.Random || !m.FullyRandom || m.RegProtoMin != 1 || m.RegProtoMax != 2 {
		t.Errorf("first rule's masquerade reads back as %+v, want ports in registers 1-2, random,fully-random", m)
	}
	// The transport passes everything else through unchanged: a plain connection reads the same.
	plain, err := nftables.New(nftables.WithNetNSFd(n.conn.netns))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := plain.GetRules(masqdTable(), &nftables.Chain{Name: ChainName, Table: masqdTable()})
	if err != nil || len(direct) != len(rules) {
		t.Fatalf("plain read: %d rules, %v; want %d", len(direct), err, len(rules))
	}
	for i := range rules {
		if !sameExprs(rules[i].Exprs, direct[i].Exprs) {
			t.Errorf("rule %d reads differently through the transport", i)
		}
	}
}
