package ruleset

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
)

func parseConfig(t *testing.T, text string, opts config.Options) config.Config {
	t.Helper()
	cfg, _, err := config.Parse("ip-masq-agent", []byte(text), opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestExplain walks the scenarios' configs: each destination's verdict and the entry (with its line) that decided.
func TestExplain(t *testing.T) {
	// The on-prem private endpoint solved with masqd's masqueradeCIDRs; the example.
	privateEndpoint := "nonMasqueradeCIDRs:\n" + // line 1
		"  - 10.0.0.0/8\n" + // 2
		"  - 10.1.1.0/24\n" + // 3
		"masqueradeCIDRs:\n" + // 4
		"  - 10.2.1.100/32\n" + // 5
		"  - 10.2.0.0/16\n" // 6
	// The Cilium-on-TKE ConfigMap (masqLinkLocal true).
	ciliumTKE := "nonMasqueradeCIDRs:\n  - 10.0.0.0/16\n  - 172.18.0.0/16\n  - 192.168.0.0/17\nmasqLinkLocal: true\n"
	ipv6 := "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8:100::/48]\nmasqueradeCIDRs: [2001:db8:100:7::/64]\n"
	// The pod ranges typed once: the key and --cluster-cidr.
	cluster := "nonMasqueradeCIDRs: [10.0.0.0/8]\n" + // line 1
		"clusterCIDRs:\n" + // 2
		"  - 100.64.0.0/10\n" + // 3
		"  - 10.64.0.0/14\n" + // 4
		"masqueradeCIDRs: [100.64.9.9/32]\n" // 5
	clusterFlag := config.Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16"), netip.MustParsePrefix("100.64.0.0/10")}}

	type want struct {
		dst    string
		masq   bool
		reason Reason
		entry  string // the entry's prefix; "" for none
		line   int    // the entry's line; 0 for a default, a flag or none
		flag   string // the flag that gave the entry; "" for none
	}
	for _, tc := range []struct {
		name string
		text string
		opts config.Options
		want []want
	}{
		{"private-endpoint", privateEndpoint, config.Options{}, []want{
			{"10.2.1.100", true, MasqueradeCIDR, "10.2.1.100/32", 5, ""}, // the most specific of 10.2.1.100/32 and 10.2.0.0/16
			{"10.2.200.1", true, MasqueradeCIDR, "10.2.0.0/16", 6, ""},
			{"10.1.1.7", false, NonMasqueradeCIDR, "10.1.1.0/24", 3, ""}, // the most specific of 10/8 and 10.1.1/24
			{"10.128.0.9", false, NonMasqueradeCIDR, "10.0.0.0/8", 2, ""},
			{"169.254.169.254", false, LinkLocal, "169.254.0.0/16", 0, ""},
			{"172.16.0.1", true, NoRange, "", 0, ""}, // the file's list replaces the defaults
			{"8.8.8.8", true, NoRange, "", 0, ""},
			{"::ffff:10.128.0.9", false, NonMasqueradeCIDR, "10.0.0.0/8", 2, ""}, // IPv4-mapped: looked up as IPv4
			{"2001:db8::1", false, NoIPv6Rule, "", 0, ""},
			{"fe80::1", false, NoIPv6Rule, "", 0, ""},
		}},
		{"default", "", config.Options{}, []want{
			{"192.168.1.1", false, NonMasqueradeCIDR, "192.168.0.0/16", 0, ""},
			{"100.64.0.1", true, NoRange, "", 0, ""},
		}},
		{"all-reserved", "", config.Options{NoMasqAllReservedRanges: true}, []want{
			{"100.64.0.1", false, NonMasqueradeCIDR, "100.64.0.0/10", 0, ""},
			{"203.0.113.9", false, NonMasqueradeCIDR, "203.0.113.0/24", 0, ""},
		}},
		{"cilium-tke", ciliumTKE, config.Options{}, []want{
			{"169.254.0.23", true, LinkLocal, "169.254.0.0/16", 0, ""}, // CVM metadata needs the node IP
			{"10.0.3.4", false, NonMasqueradeCIDR, "10.0.0.0/16", 2, ""},
			{"10.1.0.1", true, NoRange, "", 0, ""},
			{"192.168.200.1", true, NoRange, "", 0, ""},
		}},
		{"ipv6", ipv6, config.Options{EnableIPv6: true}, []want{
			{"2001:db8:100::9", false, NonMasqueradeCIDR, "2001:db8:100::/48", 1, ""},
			{"2001:db8:100:7::1", true, MasqueradeCIDR, "2001:db8:100:7::/64", 2, ""},
			{"fe80::1%eth0", false, LinkLocal, "fe80::/10", 0, ""},
			{"2001:db8:ff00::10", true, NoRange, "", 0, ""},
		}},
		{"cluster-cidrs", cluster, clusterFlag, []want{
			{"100.64.3.4", false, ClusterCIDR, "100.64.0.0/10", 3, ""}, // in the key and the flag: the key's line
			{"10.65.0.9", false, ClusterCIDR, "10.64.0.0/14", 4, ""},   // more specific than nonMasqueradeCIDRs' 10/8
			{"10.1.0.9", false, NonMasqueradeCIDR, "10.0.0.0/8", 1, ""},
			{"172.31.200.1", false, ClusterCIDR, "172.31.0.0/16", 0, config.ClusterCIDRFlag},
			{"100.64.9.9", true, MasqueradeCIDR, "100.64.9.9/32", 5, ""}, // masqueradeCIDRs still win
			{"8.8.8.8", true, NoRange, "", 0, ""},
		}},
		{"cluster-cidrs-flag-only", "", clusterFlag, []want{
			{"100.64.3.4", false, ClusterCIDR, "100.64.0.0/10", 0, config.ClusterCIDRFlag},
			{"10.1.0.9", false, NonMasqueradeCIDR, "10.0.0.0/8", 0, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConfig(t, tc.text, tc.opts)
			for _, w := range tc.want {
				d := Explain(cfg, Options{RandomFully: true}, netip.MustParseAddr(w.dst))
				var entry string
				if d.Entry.Prefix.IsValid() {
					entry = d.Entry.Prefix.String()
				}
				if d.Masquerade != w.masq || d.Reason != w.reason || entry != w.entry || d.Entry.Source.Line != w.line || d.Entry.Source.Flag != w.flag {
					t.Errorf("%s: masquerade %t, %s %q line %d flag %q; want %t, %s %q line %d flag %q",
						w.dst, d.Masquerade, d.Reason, entry, d.Entry.Source.Line, d.Entry.Source.Flag, w.masq, w.reason, w.entry, w.line, w.flag)
				}
			}
		})
	}
}

// TestExplainAgreesWithCompile: for random configs and destinations the verdict is the compiled ruleset's,
// every verdict is explained, and the entry named really contains the destination.
func TestExplainAgreesWithCompile(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	randPrefix := func(v6 bool) netip.Prefix {
		if v6 {
			// A small corner of the IPv6 space, so that prefixes and addresses meet.
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
			return netip.PrefixFrom(a, 32+r.IntN(97)).Masked()
		}
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		return netip.PrefixFrom(a, 8+r.IntN(25)).Masked()
	}
	randAddr := func() netip.Addr {
		switch r.IntN(4) {
		case 0:
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		case 1:
			return netip.AddrFrom4([4]byte{169, 254, byte(r.IntN(256)), byte(r.IntN(256))})
		case 2:
			return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(r.IntN(256))})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
	}
	for range 300 {
		cfg := config.Default(config.Options{})
		cfg.EnableIPv6 = r.IntN(2) == 0
		cfg.MasqLinkLocal, cfg.MasqLinkLocalIPv6 = r.IntN(2) == 0, r.IntN(2) == 0
		cfg.NonMasqueradeCIDRs, cfg.MasqueradeCIDRs = nil, nil
		for range r.IntN(6) {
			cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: randPrefix(cfg.EnableIPv6 && r.IntN(2) == 0)})
		}
		for range r.IntN(4) {
			cfg.MasqueradeCIDRs = append(cfg.MasqueradeCIDRs, config.CIDR{Prefix: randPrefix(cfg.EnableIPv6 && r.IntN(2) == 0)})
		}
		cfg.ClusterCIDRs = nil
		for range r.IntN(3) {
			cfg.ClusterCIDRs = append(cfg.ClusterCIDRs, config.CIDR{Prefix: randPrefix(cfg.EnableIPv6 && r.IntN(2) == 0)})
		}
		rs := Compile(cfg, Options{})
		for range 50 {
			dst := randAddr()
			d := Explain(cfg, Options{}, dst)
			if d.Masquerade != rs.Masquerades(dst) {
				t.Fatalf("config %+v, %s: Explain says masquerade %t, the compiled ruleset %t", cfg, dst, d.Masquerade, !d.Masquerade)
			}
			if d.Reason == Unexplained {
				t.Fatalf("config %+v, %s: verdict %t unexplained", cfg, dst, d.Masquerade)
			}
			if d.Entry.Prefix.IsValid() && !d.Entry.Prefix.Contains(dst) {
				t.Fatalf("config %+v, %s: %s entry %s does not contain it", cfg, dst, d.Reason, d.Entry.Prefix)
			}
			if _, kept := rs.Element(dst); kept == d.Masquerade && (dst.Is4() || cfg.EnableIPv6) {
				t.Fatalf("config %+v, %s: Element says kept %t, verdict masquerade %t", cfg, dst, kept, d.Masquerade)
			}
		}
	}
}

func TestElement(t *testing.T) {
	cfg := parseConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.2.1.100/32]\n", config.Options{})
	rs := Compile(cfg, Options{})
	for _, tc := range []struct {
		dst  string
		want string
	}{
		{"10.2.1.99", "10.0.0.0-10.2.1.99"},
		{"10.2.1.101", "10.2.1.101-10.255.255.255"},
		{"10.2.1.100", ""},
		{"169.254.0.1", "169.254.0.0/16"},
		{"8.8.8.8", ""},
		{"2001:db8::1", ""}, // no IPv6 set
	} {
		iv, ok := rs.Element(netip.MustParseAddr(tc.dst))
		got := ""
		if ok {
			got = iv.String()
		}
		if got != tc.want {
			t.Errorf("Element(%s) = %q, want %q", tc.dst, got, tc.want)
		}
	}
}
