package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// benchFiles writes n IPv4 and n IPv6 disjoint prefixes (the nft and e2e benchmarks' prefixes) as block lists,
// split into as few files as MaxFileSize allows: one file holds about 20,000 prefixes per family, so 100,000
// per family is a directory of ip-masq* files (or several ConfigMaps) that Load merges.
func benchFiles(n int) [][]byte {
	const perFile = 20_000
	var files [][]byte
	for start := 0; start < n; start += perFile {
		var b strings.Builder
		b.WriteString("enableIPv6: true\ncidrLimit: 1000000\nnonMasqueradeCIDRs:\n")
		for i := start; i < min(n, start+perFile); i++ {
			v4 := netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0})
			v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, byte(i >> 15), byte(i >> 7), byte(i << 1)})
			fmt.Fprintf(&b, "  - %s\n  - %s\n", netip.PrefixFrom(v4, 31), netip.PrefixFrom(v6, 64))
		}
		b.WriteString("masqLinkLocal: false\nresyncInterval: 60s\n")
		if b.Len() > MaxFileSize {
			panic(fmt.Sprintf("bench file of %d bytes", b.Len()))
		}
		files = append(files, []byte(b.String()))
	}
	return files
}

// BenchmarkParse parses and validates n prefixes per family, and merges the files as Load does: the
// agent's work on every config change before it compiles.
func BenchmarkParse(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000, 100_000} {
		files := benchFiles(n)
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cfgs := make([]Config, len(files))
				for i, data := range files {
					cfg, _, err := Parse(fmt.Sprintf("ip-masq-agent-%d", i), data, Options{})
					if err != nil {
						b.Fatal(err)
					}
					cfgs[i] = cfg
				}
				if cfg := Merge(cfgs...); len(cfg.NonMasqueradeCIDRs) != 2*n {
					b.Fatalf("%d CIDRs", len(cfg.NonMasqueradeCIDRs))
				}
			}
		})
	}
}
