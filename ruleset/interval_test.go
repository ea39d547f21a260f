package ruleset

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/masqd/masqd/config"
)

func ivs(t *testing.T, s string) []Interval {
	t.Helper()
	var out []Interval
	for _, f := range strings.Fields(s) {
		if a, b, ok := strings.Cut(f, "-"); ok {
			out = append(out, IntervalFrom(netip.MustParseAddr(a), netip.MustParseAddr(b)))
			continue
		}
		if !strings.Contains(f, "/") {
			a := netip.MustParseAddr(f)
			out = append(out, IntervalFrom(a, a))
			continue
		}
		out = append(out, PrefixInterval(netip.MustParsePrefix(f)))
	}
	return out
}

func show(s []Interval) string {
	var parts []string
	for _, iv := range s {
		parts = append(parts, iv.String())
	}
	return strings.Join(parts, " ")
}

func TestIntervalString(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":                  "10.0.0.0/8",
		"10.0.0.0-11.255.255.255":     "10.0.0.0/7",
		"10.0.0.1-10.0.0.6":           "10.0.0.1-10.0.0.6",
		"1.2.3.4/32":                  "1.2.3.4",
		"0.0.0.0/0":                   "0.0.0.0/0",
		"240.0.0.0-255.255.255.255":   "240.0.0.0/4",
		"fe80::/10":                   "fe80::/10",
		"2001:db8::1-2001:db8::1":     "2001:db8::1",
		"2001:db8::-2001:db8::ff":     "2001:db8::/120",
		"2001:db8::1-2001:db8::ff":    "2001:db8::1-2001:db8::ff",
		"::/0":                        "::/0",
		"10.2.1.101-10.255.255.255":   "10.2.1.101-10.255.255.255",
		"192.168.0.0-192.168.255.255": "192.168.0.0/16",
	} {
		if got := show(ivs(t, in)); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

func TestIntervalFrom(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		first, last netip.Addr
		want        string
	}{
		{a("10.0.0.0"), a("10.255.255.255"), "10.0.0.0/8"},
		{a("2001:db8::"), a("2001:db8::ff"), "2001:db8::/120"},
		{a("::ffff:10.0.0.0"), a("::ffff:10.0.0.255"), "::ffff:10.0.0.0/120"}, // IPv4-mapped stays IPv6
		{a("10.0.0.1"), a("10.0.0.0"), "invalid Prefix"},                      // reversed: the zero Interval
		{a("10.0.0.0"), a("2001:db8::"), "invalid Prefix"},                    // two families
		{netip.Addr{}, netip.Addr{}, "invalid Prefix"},
	} {
		iv := IntervalFrom(tc.first, tc.last)
		if got := iv.String(); got != tc.want {
			t.Errorf("IntervalFrom(%v, %v) = %s, want %s", tc.first, tc.last, got, tc.want)
		}
		if tc.want != "invalid Prefix" && (iv.First() != tc.first || iv.Last() != tc.last || iv.Is6() != tc.first.Is6()) {
			t.Errorf("IntervalFrom(%v, %v) gives back %v, %v (IPv6 %t)", tc.first, tc.last, iv.First(), iv.Last(), iv.Is6())
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"192.168.0.0/16 10.0.0.0/8 172.16.0.0/12", "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16"},
		{"10.0.0.0/8 10.1.0.0/16", "10.0.0.0/8"},               // contained
		{"10.1.0.0/16 10.0.0.0/8", "10.0.0.0/8"},               // contained, other order
		{"10.0.0.0/8 11.0.0.0/8", "10.0.0.0/7"},                // neighbours merge
		{"10.0.0.0/8 10.0.0.0/8", "10.0.0.0/8"},                // duplicate
		{"1.0.0.1-1.0.0.5 1.0.0.3-1.0.0.9", "1.0.0.1-1.0.0.9"}, // overlap
		{"1.0.0.1-1.0.0.5 1.0.0.6-1.0.0.9", "1.0.0.1-1.0.0.9"}, // touching
		{"1.0.0.1-1.0.0.5 1.0.0.7-1.0.0.9", "1.0.0.1-1.0.0.5 1.0.0.7-1.0.0.9"},
		{"240.0.0.0/4 255.255.255.255", "240.0.0.0/4"}, // top of the space
		{"0.0.0.0/0 10.0.0.0/8", "0.0.0.0/0"},
		{"fe80::/10 2001:db8::/32 2001:db8:1::/48", "2001:db8::/32 fe80::/10"},
		// In order and merged, then one out of order: what is merged so far is sorted again with the rest.
		{"1.0.0.1-1.0.0.5 1.0.0.6-1.0.0.9 2.0.0.0/8 0.0.0.0/8 1.0.0.10", "0.0.0.0/8 1.0.0.1-1.0.0.10 2.0.0.0/8"},
	} {
		if got := show(normalize(ivs(t, tc.in))); got != tc.want {
			t.Errorf("normalize(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCompileMergesAsItReads: Compile merges each family as the config lists it, and sorts what follows the
// first prefix out of order; IPv4 and IPv6 mixed in any order give the normalized sets.
func TestCompileMergesAsItReads(t *testing.T) {
	for _, tc := range []struct{ in, want4, want6 string }{
		{"10.0.0.0/9 10.128.0.0/9 11.0.0.0/8", "10.0.0.0/7 169.254.0.0/16", "fe80::/10"},
		{"2001:db8::/33 10.0.0.0/8 2001:db8:8000::/33 2001:db9::/32", "10.0.0.0/8 169.254.0.0/16", "2001:db8::/31 fe80::/10"},
		// Merged, then one out of order in each family, then more in order.
		{"10.0.0.0/9 2001:db8::/33 10.128.0.0/9 2001:db8:8000::/33 8.0.0.0/8 2001:db6::/32 11.0.0.0/8 2001:db9::/32",
			"8.0.0.0/8 10.0.0.0/7 169.254.0.0/16", "2001:db6::/32 2001:db8::/31 fe80::/10"},
		// The link-local ranges go in among the rest, merging with what they touch.
		{"192.168.0.0/16 fec0::/10", "169.254.0.0/16 192.168.0.0/16", "fe80::/9"},
		{"169.254.0.0/15 fe80::/9", "169.254.0.0/15", "fe80::/9"},
		{"", "169.254.0.0/16", "fe80::/10"},
	} {
		var cfg config.Config
		cfg.EnableIPv6 = true
		for _, iv := range ivs(t, tc.in) {
			p, _ := iv.Prefix()
			cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: p})
		}
		r := Compile(cfg, Options{})
		if got4, got6 := show(r.NonMasq4), show(r.NonMasq6); got4 != tc.want4 || got6 != tc.want6 {
			t.Errorf("Compile(%s) = %s | %s, want %s | %s", tc.in, got4, got6, tc.want4, tc.want6)
		}
	}
}

func TestInsertInterval(t *testing.T) {
	for _, tc := range []struct{ s, x, want string }{
		{"", "169.254.0.0/16", "169.254.0.0/16"},
		{"10.0.0.0/8 192.168.0.0/16", "169.254.0.0/16", "10.0.0.0/8 169.254.0.0/16 192.168.0.0/16"},
		{"192.168.0.0/16", "169.254.0.0/16", "169.254.0.0/16 192.168.0.0/16"},
		{"10.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8 169.254.0.0/16"},
		{"169.254.169.254", "169.254.0.0/16", "169.254.0.0/16"},                            // inside
		{"0.0.0.0/0", "169.254.0.0/16", "0.0.0.0/0"},                                       // covered
		{"169.253.0.0/16 169.255.0.0/16", "169.254.0.0/16", "169.253.0.0-169.255.255.255"}, // touches both
		{"169.253.0.0/16 170.0.0.0/8", "169.254.0.0/16", "169.253.0.0-169.254.255.255 170.0.0.0/8"},
		{"1.0.0.0/8 169.254.1.0/24 169.254.3.0/24 169.255.0.1 200.0.0.0/8", "169.254.0.0/16",
			"1.0.0.0/8 169.254.0.0/16 169.255.0.1 200.0.0.0/8"}, // several inside, one just past without touching
		{"fe80::/10", "fe80::/10", "fe80::/10"},
		{"::/1 ff00::/8", "fe80::/10", "::/1 fe80::/10 ff00::/8"},
		{"fec0::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10", "fe80::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, // up to the last address
	} {
		s := ivs(t, tc.s)
		if got := show(insertInterval(s, ivs(t, tc.x)[0])); got != tc.want {
			t.Errorf("insertInterval(%s, %s) = %s, want %s", tc.s, tc.x, got, tc.want)
		}
	}
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"10.0.0.0/8", "", "10.0.0.0/8"},
		{"", "10.0.0.0/8", ""},
		{"10.0.0.0/8", "10.2.1.100", "10.0.0.0-10.2.1.99 10.2.1.101-10.255.255.255"},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.0.0.0/8", "0.0.0.0/0", ""},
		{"10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9"},
		{"10.0.0.0/8", "10.128.0.0/9", "10.0.0.0/9"},
		{"10.0.0.0/8", "9.0.0.0-10.0.0.255", "10.0.1.0-10.255.255.255"},
		{"10.0.0.0/8 172.16.0.0/12", "10.255.255.0-172.16.0.255", "10.0.0.0-10.255.254.255 172.16.1.0-172.31.255.255"},
		{"10.0.0.0/8", "10.1.0.0/16 10.3.0.0/16", "10.0.0.0/16 10.2.0.0/16 10.4.0.0-10.255.255.255"},
		{"240.0.0.0/4", "255.255.255.255", "240.0.0.0-255.255.255.254"},
		{"0.0.0.0/0", "0.0.0.0", "0.0.0.1-255.255.255.255"},
		{"fe80::/10", "fe80::1", "fe80:: fe80::2-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		got := show(subtract(normalize(ivs(t, tc.a)), normalize(ivs(t, tc.b))))
		if got != tc.want {
			t.Errorf("%s minus %s = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestSubtractReference checks subtract and normalize against a per-address reference over a small space.
func TestSubtractReference(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	iv := func(a, b int) Interval { return IntervalFrom(addr(a), addr(b)) }
	for seed := range 300 {
		var a, b []Interval
		in := func(set []Interval, x int) bool {
			return slices.ContainsFunc(set, func(v Interval) bool { return v.Contains(addr(x)) })
		}
		r := uint32(seed*2654435761 + 1)
		next := func() int { r ^= r << 13; r ^= r >> 17; r ^= r << 5; return int(r % 256) }
		for range next()%6 + 1 {
			x, y := next(), next()
			a = append(a, iv(min(x, y), max(x, y)))
		}
		for range next() % 5 {
			x, y := next(), next()
			b = append(b, iv(min(x, y), max(x, y)))
		}
		got := subtract(normalize(a), normalize(b))
		for i := 1; i < len(got); i++ {
			if got[i-1].Last().Next().Compare(got[i].First()) >= 0 {
				t.Fatalf("seed %d: result not normalized: %s", seed, show(got))
			}
		}
		for x := range 256 {
			if want := in(a, x) && !in(b, x); in(got, x) != want {
				t.Fatalf("seed %d: address %s: in result %t, want %t (a=%s b=%s got=%s)",
					seed, addr(x), in(got, x), want, show(a), show(b), show(got))
			}
		}
	}
}

func TestDiffIntervals(t *testing.T) {
	for _, tc := range []struct{ have, want, del, add string }{
		{"", "", "", ""},
		{"10.0.0.0/8", "10.0.0.0/8", "", ""},
		{"10.0.0.0/8", "", "10.0.0.0/8", ""},
		{"", "10.0.0.0/8", "", "10.0.0.0/8"},
		{"10.0.0.0/8 192.168.0.0/16", "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16", "", "172.16.0.0/12"},
		{"10.0.0.0/8", "10.0.0.0/7", "10.0.0.0/8", "10.0.0.0/7"}, // same start, the end moved
		{"1.0.0.0/8 3.0.0.0/8 5.0.0.0/8", "2.0.0.0/8 3.0.0.0/8 6.0.0.0/8", "1.0.0.0/8 5.0.0.0/8", "2.0.0.0/8 6.0.0.0/8"},
	} {
		del, add := DiffIntervals(ivs(t, tc.have), ivs(t, tc.want))
		if show(del) != tc.del || show(add) != tc.add {
			t.Errorf("diff(%q, %q) = del %q add %q, want del %q add %q", tc.have, tc.want, show(del), show(add), tc.del, tc.add)
		}
	}
}
