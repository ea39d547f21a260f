package ruleset

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/masqd/masqd/config"
)

func compileYAML(t *testing.T, yaml string, enableIPv6 bool) Ruleset {
	t.Helper()
	cfg, _, err := config.Parse("test", []byte(yaml), config.Options{EnableIPv6: enableIPv6})
	if err != nil {
		t.Fatal(err)
	}
	return Compile(cfg, Options{RandomFully: true})
}

// TestFlipped: the destinations whose verdict an edit changes, by family, for the edits the issue is about
// (a range moved to or from nonMasqueradeCIDRs) and the ones that change no destination.
func TestFlipped(t *testing.T) {
	const base = "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
	tests := []struct {
		name       string
		have, want string
		have6      bool // enableIPv6 on the have side (want follows want6)
		want6      bool
		v4, v6     string
	}{
		{name: "nothing changed", have: base, want: base},
		{name: "a range made non-masquerade", have: base, want: "nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n",
			v4: "203.0.113.0/24"},
		{name: "a range made masquerade again", have: "nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n", want: base,
			v4: "203.0.113.0/24"},
		{name: "both ways at once", have: "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n",
			want: "nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n", v4: "198.51.100.0/24 203.0.113.0/24"},
		{name: "split into prefixes, same addresses", have: "nonMasqueradeCIDRs: [192.0.2.0/24]\n",
			want: "nonMasqueradeCIDRs: [192.0.2.0/25, 192.0.2.128/25]\n"},
		{name: "a range widened", have: "nonMasqueradeCIDRs: [192.0.2.0/25]\n", want: "nonMasqueradeCIDRs: [192.0.2.0/24]\n",
			v4: "192.0.2.128/25"},
		{name: "adjacent flips merge", have: "nonMasqueradeCIDRs: [192.0.2.0/25]\n", want: "nonMasqueradeCIDRs: [192.0.2.128/25]\n",
			v4: "192.0.2.0/24"},
		{name: "masqueradeCIDRs carve a hole", have: base, want: base + "masqueradeCIDRs: [10.96.0.0/12]\n", v4: "10.96.0.0/12"},
		{name: "masqLinkLocal", have: base, want: base + "masqLinkLocal: true\n", v4: "169.254.0.0/16"},
		{name: "clusterCIDRs", have: base, want: base + "clusterCIDRs: [100.64.0.0/10]\n", v4: "100.64.0.0/10"},
		{name: "masqueradeSourceCIDRs flips no destination", have: base, want: base + "masqueradeSourceCIDRs: [10.244.0.0/16]\n"},
		{name: "resyncInterval and flushConntrack flip nothing", have: base, want: base + "resyncInterval: 5s\nflushConntrack: true\n"},
		{name: "IPv6 range", have: base, want: "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8:1::/48]\n", have6: true, want6: true,
			v6: "2001:db8:1::/48"},
		{name: "masqLinkLocalIPv6", have: base, want: base + "masqLinkLocalIPv6: true\n", have6: true, want6: true, v6: "fe80::/10"},
		{name: "IPv6 turned on: all but the non-masquerade set", have: base, want: base, want6: true,
			v6: "::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff fec0::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{name: "IPv6 turned off", have: "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8::/32]\n", want: base, have6: true,
			v6: "::-2001:db7:ffff:ffff:ffff:ffff:ffff:ffff 2001:db9::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff fec0::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have, want := compileYAML(t, tt.have, tt.have6), compileYAML(t, tt.want, tt.want6)
			keep4, keep6 := slices.Clone(have.NonMasq4), slices.Clone(have.NonMasq6)
			v4, v6 := Flipped(have, want)
			if got := show(v4); got != tt.v4 {
				t.Errorf("IPv4 flipped %q, want %q", got, tt.v4)
			}
			if got := show(v6); got != tt.v6 {
				t.Errorf("IPv6 flipped %q, want %q", got, tt.v6)
			}
			if tt.v4 == "" && v4 != nil || tt.v6 == "" && v6 != nil {
				t.Errorf("nothing flipped but not nil: %v %v", v4, v6)
			}
			if !slices.Equal(keep4, have.NonMasq4) || !slices.Equal(keep6, have.NonMasq6) {
				t.Error("Flipped modified its input")
			}
			// Symmetric: the flip back flips the same addresses.
			b4, b6 := Flipped(want, have)
			if !slices.Equal(b4, v4) || !slices.Equal(b6, v6) {
				t.Errorf("Flipped(want, have) = %s / %s, want the same as Flipped(have, want)", show(b4), show(b6))
			}
		})
	}
}

// TestFlippedReference: over a small space, an address is in Flipped exactly when Masquerades differs
// between the two rulesets, for sets as the kernel may hold them (unsorted, overlapping).
func TestFlippedReference(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for seed := range 300 {
		r := uint32(seed*2654435761 + 7)
		next := func() int { r ^= r << 13; r ^= r >> 17; r ^= r << 5; return int(r % 256) }
		set := func() []Interval {
			var s []Interval
			for range next() % 5 {
				x, y := next(), next()
				s = append(s, IntervalFrom(addr(min(x, y)), addr(max(x, y))))
			}
			return s
		}
		have, want := Ruleset{NonMasq4: set()}, Ruleset{NonMasq4: normalize(set())}
		// Masquerades searches a normalized set; the kernel's unsorted one is read as the addresses it holds.
		haveNorm := Ruleset{NonMasq4: normalize(have.NonMasq4)}
		v4, v6 := Flipped(have, want)
		if v6 != nil {
			t.Fatalf("seed %d: IPv6 flipped without IPv6: %s", seed, show(v6))
		}
		for i := 1; i < len(v4); i++ {
			if v4[i-1].Last().Next().Compare(v4[i].First()) >= 0 {
				t.Fatalf("seed %d: result not normalized: %s", seed, show(v4))
			}
		}
		flipped := Ruleset{NonMasq4: v4}
		for x := range 256 {
			a := addr(x)
			if differ, in := haveNorm.Masquerades(a) != want.Masquerades(a), !flipped.Masquerades(a); in != differ {
				t.Fatalf("seed %d: %s in flipped %t, want %t (have %s, want %s, flipped %s)",
					seed, a, in, differ, show(have.NonMasq4), show(want.NonMasq4), show(v4))
			}
		}
	}
}

func TestInSet(t *testing.T) {
	set := normalize(ivs(t, "192.0.2.0/24 203.0.113.7 2001:db8::/32"))
	v4, v6 := ofFamily(set, false), ofFamily(set, true)
	for _, tc := range []struct {
		set  []Interval
		addr string
		want bool
	}{
		{v4, "192.0.2.0", true}, {v4, "192.0.2.255", true}, {v4, "192.0.3.0", false}, {v4, "203.0.113.7", true},
		{v4, "203.0.113.8", false}, {v4, "::ffff:192.0.2.1", true}, {v4, "2001:db8::1", false},
		{v6, "2001:db8::1", true}, {v6, "2001:db9::", false}, {v6, "192.0.2.1", false}, {nil, "192.0.2.1", false},
	} {
		if got := InSet(tc.set, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("InSet(%s, %s) = %v, want %v", show(tc.set), tc.addr, got, tc.want)
		}
	}
}

// FuzzFlipped: for two configs decoded as FuzzCompile decodes one (the input split in two), an address is in
// Flipped exactly when Masquerades differs between the two rulesets, probed at every prefix edge of both, and
// the result is normalized.
func FuzzFlipped(f *testing.F) {
	f.Add(compileInput(0, "non 10.0.0.0/8"), compileInput(0, "non 10.0.0.0/8", "non 203.0.113.0/24"))
	f.Add(compileInput(fuzzEnableIPv6, "non 10.0.0.0/8", "non 2001:db8::/32"), compileInput(0, "non 10.0.0.0/8"))
	f.Add(compileInput(fuzzMasqLinkLocal, "non 0.0.0.0/0", "masq 192.0.2.0/24"), compileInput(fuzzEnableIPv6|fuzzMasqLinkLocalIPv6, "masq 0.0.0.0/0"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ca, _, na := decodeCompileInput(a[:min(len(a), 1+32*18)])
		cb, _, nb := decodeCompileInput(b[:min(len(b), 1+32*18)])
		ra, rb := Compile(ca, Options{}), Compile(cb, Options{})
		v4, v6 := Flipped(ra, rb)
		checkNormalized(t, "flipped IPv4", v4, 32)
		checkNormalized(t, "flipped IPv6", v6, 128)
		probes := slices.Concat(na, nb)
		for _, e := range edges {
			probes = around(probes, e)
		}
		for _, iv := range slices.Concat(ra.NonMasq4, ra.NonMasq6, rb.NonMasq4, rb.NonMasq6) {
			probes = around(around(probes, iv.First()), iv.Last())
		}
		for _, p := range probes {
			if p.Is4In6() {
				continue // Masquerades reads them as IPv4; Flipped keeps the families apart
			}
			set := v4
			if p.Is6() {
				set = v6
			}
			if differ := ra.Masquerades(p) != rb.Masquerades(p); InSet(set, p) != differ {
				t.Fatalf("%s: in Flipped %t, verdicts differ %t\nhave %s\nwant %s", p, InSet(set, p), differ, ra, rb)
			}
		}
	})
}
