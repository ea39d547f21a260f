package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/masqd/masqd/config"
)

// TestToPortsRulesKernel applies a table with --to-ports and checks that nft lists exactly the rules' Text
// behind masqd's matches, with the flags the transport restores, and that they read back through it.
func TestToPortsRulesKernel(t *testing.T) {
	n := newNetns(t)
	ranges := []PortRange{{1024, 1100}, {2000, 2300}}
	mustApply(t, n.conn, Compile(config.Config{EnableIPv6: true}, Options{RandomFully: true, ToPorts: ranges}), Rebuilt)

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
