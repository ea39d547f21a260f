package ruleset

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/masqd/masqd/internal/testenv"
)

// benchSizes are the prefixes per family the benchmarks compile (nft's benchmarks apply the same sizes).
var benchSizes = []int{10, 1_000, 10_000, 100_000}

func BenchmarkCompile(b *testing.B) {
	for _, n := range benchSizes {
		cfg := testenv.DisjointConfig(n)
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
		cfg := testenv.DisjointConfig(n)
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
