package ruleset

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/masqd/masqd/config"
)

// Fuzz targets for masqd's prefix arithmetic (issue 7). Each checks the compiled or computed intervals against
// a reference that decides membership one address at a time, straight from the prefixes, without intervals.
// Seed corpora live in testdata/fuzz/<target>; CI runs each target for a short fixed time:
//
//	go test ./nft -run '^$' -fuzz '^FuzzCompile$' -fuzztime 15s

// Config flags in the first byte of FuzzCompile's input.
const (
	fuzzMasqLinkLocal = 1 << iota
	fuzzMasqLinkLocalIPv6
	fuzzEnableIPv6
	fuzzRandomFully
)

// Record header bits: which list, which family.
const (
	fuzzMasqList = 1 << iota // masqueradeCIDRs; else nonMasqueradeCIDRs
	fuzzIPv6
)

// decodeCompileInput turns fuzz bytes into a config, as Parse could return it (masked prefixes, no IPv4-mapped
// IPv6, IPv6 only when enabled), and the addresses the input names: each prefix's address before masking.
//
// Layout: one flag byte, then records of a header byte, a prefix length and 4 or 16 address bytes (a short
// last record is padded with zeros).
func decodeCompileInput(data []byte) (cfg config.Config, opts Options, named []netip.Addr) {
	if len(data) == 0 {
		return cfg, opts, nil
	}
	flags := data[0]
	cfg.MasqLinkLocal = flags&fuzzMasqLinkLocal != 0
	cfg.MasqLinkLocalIPv6 = flags&fuzzMasqLinkLocalIPv6 != 0
	cfg.EnableIPv6 = flags&fuzzEnableIPv6 != 0
	opts.RandomFully = flags&fuzzRandomFully != 0
	rest := data[1:]
	for len(rest) >= 2 {
		h, bits := rest[0], int(rest[1])
		n := 4
		if h&fuzzIPv6 != 0 {
			n = 16
		}
		var raw [16]byte
		copy(raw[:n], rest[2:])
		rest = rest[min(len(rest), 2+n):]
		addr := netip.AddrFrom4([4]byte(raw[:4]))
		if n == 16 {
			addr = netip.AddrFrom16(raw)
		}
		named = append(named, addr)
		if addr.Is4In6() || (addr.Is6() && !cfg.EnableIPv6) {
			continue // Parse rejects these
		}
		p := netip.PrefixFrom(addr, bits%(addr.BitLen()+1)).Masked()
		c := config.CIDR{Prefix: p}
		if h&fuzzMasqList != 0 {
			cfg.MasqueradeCIDRs = append(cfg.MasqueradeCIDRs, c)
		} else {
			cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, c)
		}
	}
	return cfg, opts, named
}

// compileInput encodes a FuzzCompile input, for seeds.
func compileInput(flags byte, records ...string) []byte {
	out := []byte{flags}
	for _, r := range records {
		list, prefix, _ := strings.Cut(r, " ")
		p := netip.MustParsePrefix(prefix)
		h := byte(0)
		if list == "masq" {
			h |= fuzzMasqList
		}
		if p.Addr().Is6() {
			h |= fuzzIPv6
		}
		out = append(out, h, byte(p.Bits()))
		out = append(out, p.Addr().AsSlice()...)
	}
	return out
}

// referenceMasquerades is the classification masqd promises, decided per address from the config alone:
// masquerade when a masqueradeCIDR holds dst, or when neither a nonMasqueradeCIDR nor a kept link-local range
// holds it; IPv6 only when enabled.
func referenceMasquerades(cfg config.Config, dst netip.Addr) bool {
	if dst.Is6() && !cfg.EnableIPv6 {
		return false
	}
	for _, c := range cfg.MasqueradeCIDRs {
		if c.Prefix.Contains(dst) {
			return true
		}
	}
	for _, c := range cfg.NonMasqueradeCIDRs {
		if c.Prefix.Contains(dst) {
			return false
		}
	}
	if !cfg.MasqLinkLocal && netip.MustParsePrefix("169.254.0.0/16").Contains(dst) {
		return false
	}
	if !cfg.MasqLinkLocalIPv6 && netip.MustParsePrefix("fe80::/10").Contains(dst) {
		return false
	}
	return true
}

// around adds a, and the addresses just below and above it, to probes.
func around(probes []netip.Addr, a netip.Addr) []netip.Addr {
	probes = append(probes, a)
	if p := a.Prev(); p.IsValid() {
		probes = append(probes, p)
	}
	if n := a.Next(); n.IsValid() {
		probes = append(probes, n)
	}
	return probes
}

// edges are the ends of both address spaces and of the link-local ranges.
var edges = []netip.Addr{
	netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
	netip.MustParseAddr("169.254.0.0"), netip.MustParseAddr("169.254.255.255"),
	netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	netip.MustParseAddr("fe80::"), netip.MustParseAddr("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
}

// checkNormalized fails unless ivs is sorted, every interval is of family bits and has First ≤ Last, and no two
// intervals overlap or touch.
func checkNormalized(t *testing.T, what string, ivs []Interval, bits int) {
	t.Helper()
	for i, iv := range ivs {
		if iv.First().BitLen() != bits || iv.Last().BitLen() != bits || iv.First().Is4In6() {
			t.Fatalf("%s[%d] = %v: not a %d-bit interval", what, i, iv, bits)
		}
		if iv.First().Compare(iv.Last()) > 0 {
			t.Fatalf("%s[%d] = %v: First after Last", what, i, iv)
		}
		if i > 0 {
			next := ivs[i-1].Last().Next()
			if !next.IsValid() || next.Compare(iv.First()) >= 0 {
				t.Fatalf("%s[%d] = %v overlaps or touches %v: not normalized", what, i, iv, ivs[i-1])
			}
		}
	}
}

// checkString fails unless iv's nft text denotes exactly iv.
func checkString(t *testing.T, iv Interval) {
	t.Helper()
	s := iv.String()
	var got Interval
	switch first, last, ok := strings.Cut(s, "-"); {
	case ok:
		got = IntervalFrom(netip.MustParseAddr(first), netip.MustParseAddr(last))
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Masked() != p {
			t.Fatalf("%v renders as %q: not an aligned prefix", iv, s)
		}
		got = PrefixInterval(p)
	default:
		a := netip.MustParseAddr(s)
		got = IntervalFrom(a, a)
	}
	if got != iv {
		t.Fatalf("%v renders as %q, which is %v", iv, s, got)
	}
}

func FuzzCompile(f *testing.F) {
	f.Add(compileInput(0, "non 10.0.0.0/8", "non 172.16.0.0/12", "non 192.168.0.0/16"))
	f.Add(compileInput(fuzzRandomFully, "non 10.0.0.0/8", "masq 10.2.1.100/32"))
	f.Add(compileInput(fuzzEnableIPv6|fuzzMasqLinkLocal, "non 0.0.0.0/0", "masq 169.254.169.254/32", "non ::/0", "masq fe80::1/128"))
	f.Add(compileInput(fuzzEnableIPv6|fuzzMasqLinkLocalIPv6, "non 240.0.0.0/4", "non 255.255.255.255/32", "non ff00::/8", "masq ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"))
	f.Add(compileInput(0, "masq 0.0.0.0/0"))
	f.Add(compileInput(fuzzEnableIPv6, "non 10.0.0.0/9", "non 10.128.0.0/9", "masq 10.127.255.255/32", "masq 10.128.0.0/32"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// At most 64 prefixes: the reference is quadratic, and small inputs explore the arithmetic as well.
		cfg, opts, named := decodeCompileInput(data[:min(len(data), 1+64*18)])
		r := Compile(cfg, opts)
		checkNormalized(t, "NonMasq4", r.NonMasq4, 32)
		checkNormalized(t, "NonMasq6", r.NonMasq6, 128)
		if r.IPv6 != cfg.EnableIPv6 || r.RandomFully != opts.RandomFully {
			t.Fatalf("IPv6 %t RandomFully %t, want %t %t", r.IPv6, r.RandomFully, cfg.EnableIPv6, opts.RandomFully)
		}
		if !r.IPv6 && len(r.NonMasq6) > 0 {
			t.Fatalf("IPv6 intervals without IPv6: %v", r.NonMasq6)
		}
		if len(r.Foreign) > 0 {
			t.Fatalf("compiled ruleset has foreign objects: %v", r.Foreign)
		}
		for _, iv := range slices.Concat(r.NonMasq4, r.NonMasq6) {
			checkString(t, iv)
		}
		_ = r.String()

		probes := slices.Clone(named)
		for _, a := range edges {
			probes = around(probes, a)
		}
		for _, c := range slices.Concat(cfg.NonMasqueradeCIDRs, cfg.MasqueradeCIDRs) {
			iv := PrefixInterval(c.Prefix)
			probes = around(around(probes, iv.First()), iv.Last())
		}
		for _, a := range probes {
			if a.Is4In6() {
				// Masquerades reads ::ffff:a.b.c.d as a.b.c.d; the kernel would send such a packet through the
				// IPv6 rule. Neither config nor traffic has them: leave them out.
				continue
			}
			if got, want := r.Masquerades(a), referenceMasquerades(cfg, a); got != want {
				t.Fatalf("Masquerades(%s) = %t, reference %t\nconfig %+v\nruleset:\n%s", a, got, want, cfg, r)
			}
		}

		// The order of the prefixes does not matter.
		rev := cfg
		rev.NonMasqueradeCIDRs = slices.Clone(cfg.NonMasqueradeCIDRs)
		rev.MasqueradeCIDRs = slices.Clone(cfg.MasqueradeCIDRs)
		slices.Reverse(rev.NonMasqueradeCIDRs)
		slices.Reverse(rev.MasqueradeCIDRs)
		if r2 := Compile(rev, opts); !reflect.DeepEqual(r, r2) {
			t.Fatalf("Compile depends on the order of prefixes:\n%s\nvs\n%s", r, r2)
		}
	})
}

// smallSpace maps a byte to an address of a 256-address space made of the lowest 128 and the highest 128
// addresses of a family, so that intervals meet both ends of the address space (where Prev and Next fail).
func smallSpace(v byte, ipv6 bool) netip.Addr {
	if ipv6 {
		var b [16]byte
		if v >= 128 {
			b = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, v}
		} else {
			b[15] = v
		}
		return netip.AddrFrom16(b)
	}
	if v >= 128 {
		return netip.AddrFrom4([4]byte{255, 255, 255, v})
	}
	return netip.AddrFrom4([4]byte{0, 0, 0, v})
}

// smallIntervals decodes byte pairs into intervals of smallSpace, ends in either order.
func smallIntervals(data []byte, ipv6 bool) []Interval {
	var out []Interval
	for i := 0; i+1 < len(data); i += 2 {
		a, b := smallSpace(data[i], ipv6), smallSpace(data[i+1], ipv6)
		if a.Compare(b) > 0 {
			a, b = b, a
		}
		out = append(out, IntervalFrom(a, b))
	}
	return out
}

// holds reports whether some interval of ivs contains a, looking at each one (the reference: no sorting,
// no search).
func holds(ivs []Interval, a netip.Addr) bool {
	for _, iv := range ivs {
		if iv.Contains(a) {
			return true
		}
	}
	return false
}

// smallProbes is every address of smallSpace, the ends of every interval ±1, and addresses in the gap
// between the two halves of the space.
func smallProbes(ipv6 bool, sets ...[]Interval) []netip.Addr {
	var probes []netip.Addr
	for v := range 256 {
		probes = append(probes, smallSpace(byte(v), ipv6))
	}
	if ipv6 {
		probes = append(probes, netip.MustParseAddr("8000::"), netip.MustParseAddr("::1:0"))
	} else {
		probes = append(probes, netip.MustParseAddr("128.0.0.0"), netip.MustParseAddr("0.0.1.0"))
	}
	for _, s := range sets {
		for _, iv := range s {
			probes = around(around(probes, iv.First()), iv.Last())
		}
	}
	return probes
}

func bitsOf(ipv6 bool) int {
	if ipv6 {
		return 128
	}
	return 32
}

func FuzzNormalize(f *testing.F) {
	f.Add(false, []byte{})
	f.Add(false, []byte{0, 10, 11, 20, 5, 12})           // overlap
	f.Add(false, []byte{0, 10, 11, 20})                  // touching
	f.Add(false, []byte{0, 127, 128, 255})               // both halves: 0.0.0.0–0.0.0.127 and 255.255.255.128–255.255.255.255
	f.Add(true, []byte{255, 255, 0, 0, 3, 3, 2, 4, 250}) // single addresses at both ends, an odd byte
	f.Add(true, []byte{100, 200, 0, 255})                // an interval across the gap
	f.Fuzz(func(t *testing.T, ipv6 bool, data []byte) {
		in := smallIntervals(data[:min(len(data), 128)], ipv6) // 64 intervals; the reference is quadratic
		orig := slices.Clone(in)
		out := normalize(in)
		if !slices.Equal(in, orig) {
			t.Fatalf("normalize modified its input")
		}
		checkNormalized(t, "normalize", out, bitsOf(ipv6))
		for _, a := range smallProbes(ipv6, in) {
			if got, want := holds(out, a), holds(in, a); got != want {
				t.Fatalf("%s: in normalize(%v) = %t, in the input = %t", a, in, got, want)
			}
		}
		if again := normalize(out); !slices.Equal(again, out) {
			t.Fatalf("normalize is not idempotent: %v then %v", out, again)
		}
		rev := slices.Clone(in)
		slices.Reverse(rev)
		if r := normalize(rev); !slices.Equal(r, out) {
			t.Fatalf("normalize depends on order: %v vs %v", out, r)
		}
	})
}

func FuzzSubtract(f *testing.F) {
	f.Add(false, byte(2), []byte{0, 255, 10, 20})        // a hole in everything
	f.Add(false, byte(2), []byte{10, 20, 0, 255})        // everything removed
	f.Add(false, byte(4), []byte{0, 10, 20, 30, 10, 20}) // b between two intervals of a
	f.Add(true, byte(2), []byte{0, 0, 0, 0})             // the lowest address
	f.Add(true, byte(2), []byte{128, 255, 255, 255})     // the highest address
	f.Add(false, byte(6), []byte{0, 127, 128, 255, 5, 5, 127, 128, 250, 255})
	f.Fuzz(func(t *testing.T, ipv6 bool, split byte, data []byte) {
		data = data[:min(len(data), 128)] // 64 intervals in all; the reference is quadratic
		k := min(int(split), len(data))
		a, b := normalize(smallIntervals(data[:k], ipv6)), normalize(smallIntervals(data[k:], ipv6))
		out := subtract(a, b)
		checkNormalized(t, "subtract", out, bitsOf(ipv6))
		for _, x := range smallProbes(ipv6, a, b) {
			if got, want := holds(out, x), holds(a, x) && !holds(b, x); got != want {
				t.Fatalf("%s: in subtract(%v, %v) = %t, want %t", x, a, b, got, want)
			}
		}
	})
}
