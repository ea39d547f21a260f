package nft

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

var benchSizes = []int{10, 1_000, 10_000, 100_000}

// BenchmarkApplyCold applies n prefixes per family to a namespace with no masqd table: one transaction that
// creates the table, both sets with every element, the chain and both rules.
func BenchmarkApplyCold(b *testing.B) {
	for _, n := range benchSizes {
		want := ruleset.Compile(testenv.DisjointConfig(n), ruleset.Options{RandomFully: true})
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			ns := newNetns(b)
			for b.Loop() {
				b.StopTimer()
				if err := ns.conn.Delete(); err != nil {
					b.Fatal(err)
				}
				ns.conn.Forget()
				b.StartTimer()
				if change, err := ns.conn.Apply(want); err != nil || change != ruleset.Rebuilt {
					b.Fatalf("Apply: %s, %v", change, err)
				}
			}
		})
	}
}

// BenchmarkApplyOneChange adds or removes one prefix in an n-prefix table: the steady-state edit.
func BenchmarkApplyOneChange(b *testing.B) {
	for _, n := range benchSizes {
		cfg := testenv.DisjointConfig(n)
		base := ruleset.Compile(cfg, ruleset.Options{RandomFully: true})
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: netip.MustParsePrefix("203.0.113.0/24")})
		more := ruleset.Compile(cfg, ruleset.Options{RandomFully: true})
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			ns := newNetns(b)
			if _, err := ns.conn.Apply(base); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				want := base
				if i%2 == 0 {
					want = more
				}
				i++
				if change, err := ns.conn.Apply(want); err != nil || change != ruleset.Updated {
					b.Fatalf("Apply: %s, %v", change, err)
				}
			}
		})
	}
}
