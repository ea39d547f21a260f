package testenv

import (
	"net/netip"
	"os"
	"testing"

	"github.com/masqd/masqd/config"
)

// CIDRs is a config's list of prefixes, written as strings; it panics on a bad one.
func CIDRs(ss ...string) []config.CIDR {
	out := make([]config.CIDR, len(ss))
	for i, s := range ss {
		out[i] = config.CIDR{Prefix: netip.MustParsePrefix(s)}
	}
	return out
}

// DisjointConfig has n disjoint IPv4 prefixes (/31s) and n disjoint IPv6 prefixes (/64s), with IPv6 on and a
// cidrLimit that admits them: the benchmarks' config of n prefixes.
func DisjointConfig(n int) config.Config {
	cfg := config.Config{EnableIPv6: true, CIDRLimit: 2 * n}
	for i := range n {
		v4 := netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 0})
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs,
			config.CIDR{Prefix: netip.PrefixFrom(v4, 31)}, config.CIDR{Prefix: netip.PrefixFrom(v6, 64)})
	}
	return cfg
}

// ParseFile is config.Parse of the file at path; any error fails the test.
func ParseFile(t testing.TB, path string, opts config.Options) config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse(path, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
