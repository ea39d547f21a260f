package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
)

// benchConfig has n disjoint IPv4 and n disjoint IPv6 prefixes.
func benchConfig(n int) config.Config {
	cfg := config.Config{EnableIPv6: true, CIDRLimit: 2 * n}
	for i := range n {
		v4 := netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 0})
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs,
			config.CIDR{Prefix: netip.PrefixFrom(v4, 31)}, config.CIDR{Prefix: netip.PrefixFrom(v6, 64)})
	}
	return cfg
}

var benchSizes = []int{10, 1_000, 10_000, 100_000}

func BenchmarkCompile(b *testing.B) {
	for _, n := range benchSizes {
		cfg := benchConfig(n)
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := Compile(cfg, Options{RandomFully: true}); len(r.NonMasq4) != n+1 {
					b.Fatalf("%d IPv4 intervals", len(r.NonMasq4))
				}
			}
		})
	}
}

// BenchmarkCompileShuffled compiles the prefixes of BenchmarkCompile in random order (the same order each run).
func BenchmarkCompileShuffled(b *testing.B) {
	for _, n := range benchSizes {
		cfg := benchConfig(n)
		rand.New(rand.NewPCG(1, uint64(n))).Shuffle(len(cfg.NonMasqueradeCIDRs), func(i, j int) {
			cfg.NonMasqueradeCIDRs[i], cfg.NonMasqueradeCIDRs[j] = cfg.NonMasqueradeCIDRs[j], cfg.NonMasqueradeCIDRs[i]
		})
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := Compile(cfg, Options{RandomFully: true}); len(r.NonMasq4) != n+1 {
					b.Fatalf("%d IPv4 intervals", len(r.NonMasq4))
				}
			}
		})
	}
}

// BenchmarkApplyCold applies n prefixes per family to a namespace with no masqd table: one transaction that
// creates the table, both sets with every element, the chain and both rules.
func BenchmarkApplyCold(b *testing.B) {
	for _, n := range benchSizes {
		want := Compile(benchConfig(n), Options{RandomFully: true})
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			ns := newNetns(b)
			for b.Loop() {
				b.StopTimer()
				if err := ns.conn.Delete(); err != nil {
					b.Fatal(err)
				}
				ns.conn.Forget()
				b.StartTimer()
				if change, err := ns.conn.Apply(want); err != nil || change != Rebuilt {
					b.Fatalf("Apply: %s, %v", change, err)
				}
			}
		})
	}
}

// BenchmarkApplyOneChange adds or removes one prefix in an n-prefix table: the steady-state edit.
func BenchmarkApplyOneChange(b *testing.B) {
	for _, n := range benchSizes {
		cfg := benchConfig(n)
		base := Compile(cfg, Options{RandomFully: true})
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: netip.MustParsePrefix("203.0.113.0/24")})
		more := Compile(cfg, Options{RandomFully: true})
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
				if change, err := ns.conn.Apply(want); err != nil || change != Updated {
					b.Fatalf("Apply: %s, %v", change, err)
				}
			}
		})
	}
}
