package nft

import (
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// TestToPortsRulesKernel applies a table with --to-ports and checks that nft lists exactly the rules' Text
// behind masqd's matches, the masquerade flags included (google/nftables leaves them out of a masquerade to
// a port range; the batch writes them), and that they read back.
func TestToPortsRulesKernel(t *testing.T) {
	n := newNetns(t)
	ranges := []ruleset.PortRange{{First: 1024, Last: 1100}, {First: 2000, Last: 2300}}
	mustApply(t, n.conn, ruleset.Compile(config.Config{EnableIPv6: true}, ruleset.Options{RandomFully: true, ToPorts: ranges}), ruleset.Rebuilt)

	var want []string
	for _, family := range []string{"ip daddr != @nonmasq4", "ip6 daddr != @nonmasq6"} {
		for _, r := range ruleset.PortRules(ranges) {
			want = append(want, family+" fib daddr type != local "+r.Text(ruleset.Counter{}, true))
		}
		want = append(want, family+" fib daddr type != local counter packets 0 bytes 0 masquerade random,fully-random")
	}
	var got []string
	listed := n.nft(t, "list", "chain", "inet", ruleset.TableName, ruleset.ChainName)
	for _, line := range strings.Split(listed, "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, "masquerade") {
			got = append(got, line)
		}
	}
	if join(got) != join(want) {
		t.Errorf("nft list chain, -want +got:\n%s", gocmp.Diff(join(want), join(got)))
	}

	// Reading back, as Conn.Read does: the port rules and their flags.
	have, _, err := n.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(have.Foreign) > 0 || !slices.Equal(have.ToPorts, ranges) || !have.RandomFully || len(have.PortCounters4) != 3*len(ranges) {
		t.Errorf("read back: ToPorts %v, RandomFully %t, %d port counters, foreign %q", have.ToPorts, have.RandomFully, len(have.PortCounters4), have.Foreign)
	}
}

func join(lines []string) string { return strings.Join(lines, "\n") + "\n" }
