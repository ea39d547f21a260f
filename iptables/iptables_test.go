package iptables

import (
	"errors"
	"flag"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

var update = flag.Bool("update", false, "rewrite testdata/iptables/* from the compiler and the kernel (review the diff!)")

// lineDiff shows where two renderings part, line by line.
func lineDiff(want, got string) string { return gocmp.Diff(want, got) }

// iptablesGoldenCases are the configs in testdata/iptables with the flags each is compiled with. For each,
// NAME.rules is what `masqd --dry-run --mode=iptables` prints, NAME.save is `iptables-save -t nat` of a
// fresh network namespace after Apply (comment lines removed), and NAME.save6 the same for ip6tables.
var iptablesGoldenCases = []struct {
	name string
	opts config.Options
	ipt  IPTablesOptions
}{
	{"empty", config.Options{}, IPTablesOptions{RandomFully: true, RandomFullySupported: true}},
	{"default", config.Options{}, IPTablesOptions{RandomFully: true, RandomFullySupported: true}},
	{"all-reserved", config.Options{NoMasqAllReservedRanges: true}, IPTablesOptions{RandomFully: true, RandomFullySupported: true}},
	{"mixed-v4v6", config.Options{EnableIPv6: true}, IPTablesOptions{RandomFully: true, RandomFullySupported: true}},
	{"masq-link-local-ipv6", config.Options{EnableIPv6: true}, IPTablesOptions{RandomFully: true, RandomFullySupported: true}},
	{"random-fully-off", config.Options{}, IPTablesOptions{RandomFully: false, RandomFullySupported: true}},
	{"to-ports", config.Options{}, IPTablesOptions{RandomFully: true, RandomFullySupported: true,
		ToPorts: []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}}},
	{"masquerade-cidrs", config.Options{}, IPTablesOptions{Chain: "IP-MASQ", RandomFully: true, RandomFullySupported: true}},
}

func compileIPTablesGolden(t *testing.T, name string, opts config.Options, ipt IPTablesOptions) IPTablesRules {
	t.Helper()
	return CompileIPTables(testenv.ParseFile(t, filepath.Join("testdata", "iptables", name+".yaml"), opts), ipt)
}

func readGolden(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "iptables", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestIPTablesGolden compares the dry-run rendering of each config with the text in testdata.
func TestIPTablesGolden(t *testing.T) {
	for _, tc := range iptablesGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := compileIPTablesGolden(t, tc.name, tc.opts, tc.ipt).String()
			path := filepath.Join("testdata", "iptables", tc.name+".rules")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readGolden(t, tc.name+".rules"); got != want {
				t.Errorf("-want +got:\n%s", lineDiff(want, got))
			}
		})
	}
}

// TestIPTablesSaveGolden checks the rendering that Apply compares with the kernel against the golden
// iptables-save dumps: the chain's rules and the jump, as iptables-save printed them.
func TestIPTablesSaveGolden(t *testing.T) {
	for _, tc := range iptablesGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			want := compileIPTablesGolden(t, tc.name, tc.opts, tc.ipt)
			files := map[Family]string{IPv4: tc.name + ".save"}
			if want.IPv6 {
				files[IPv6] = tc.name + ".save6"
			}
			for f, file := range files {
				s := parseSave(readGolden(t, file), want.Chain)
				if !s.InSync(want, f) {
					t.Errorf("%s: %s", file, stateDiff(s, want, f))
				}
			}
		})
	}
}

// TestIPTablesUpstreamPayload pins the payload for ip-masq-agent's default config against the text
// upstream's own test expects (cmd/ip-masq-agent/ip-masq-agent_test.go, "default config masquerading
// reserved ranges", with --random-fully), written out by hand in testdata/upstream; the e2e tests install
// the same text as the old agent's chain.
func TestIPTablesUpstreamPayload(t *testing.T) {
	want, err := os.ReadFile("testdata/upstream/default-random-fully.v4")
	if err != nil {
		t.Fatal(err)
	}
	r := CompileIPTables(config.Default(config.Options{}), IPTablesOptions{RandomFully: true, RandomFullySupported: true})
	if got := string(r.Payload4()); got != string(want) {
		t.Errorf("-want +got:\n%s", lineDiff(string(want), got))
	}
	if r.Payload6() != nil {
		t.Errorf("Payload6 without IPv6 = %q, want nil", r.Payload6())
	}
	wantJump := []string{"-m", "comment", "--comment",
		"ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain",
		"-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "IP-MASQ-AGENT"}
	if got := r.JumpSpec(); !slices.Equal(got, wantJump) {
		t.Errorf("JumpSpec = %q, want %q", got, wantJump)
	}
}

func TestCompileIPTablesRandomFullyNeedsSupport(t *testing.T) {
	cfg := config.Default(config.Options{EnableIPv6: true})
	r := CompileIPTables(cfg, IPTablesOptions{RandomFully: true, RandomFullySupported: false, ToPorts: []ruleset.PortRange{{First: 1024, Last: 2047}}})
	if s := r.String(); strings.Contains(s, "random-fully") {
		t.Errorf("--random-fully written for an iptables that does not support it:\n%s", s)
	}
}

// TestToPortsShares checks that upstream's chained probabilities give each range its share of the ports:
// the chance of reaching rule i times its own probability is size(i) / total, for every protocol.
func TestToPortsShares(t *testing.T) {
	ranges := []ruleset.PortRange{{First: 1024, Last: 1100}, {First: 2000, Last: 2300}, {First: 40000, Last: 40000}, {First: 50000, Last: 59999}}
	total := 0
	for _, r := range ranges {
		total += r.Size()
	}
	rules := CompileIPTables(config.Config{MasqLinkLocal: true}, IPTablesOptions{ToPorts: ranges}).V4
	if len(rules) != 3*len(ranges)+1 { // per protocol, plus the catch-all
		t.Fatalf("%d rules, want %d", len(rules), 3*len(ranges)+1)
	}
	for p, proto := range toPortsProtocols {
		reach := 1.0
		for i, want := range ranges {
			r := rules[p*len(ranges)+i]
			if r.Proto != proto || r.ToPorts != want || r.Target != "MASQUERADE" {
				t.Fatalf("rule %d is %+v, want MASQUERADE %s to %s", p*len(ranges)+i, r, proto, want)
			}
			prob := r.Probability
			if prob == 0 {
				prob = 1
			}
			if share := reach * prob; math.Abs(share-float64(want.Size())/float64(total)) > 1e-12 {
				t.Errorf("%s %s: share %.6f, want %d/%d", proto, want, share, want.Size(), total)
			}
			reach *= 1 - prob
		}
		if reach > 1e-12 {
			t.Errorf("%s: %.3g of connections fall through every range", proto, reach)
		}
	}
	if last := rules[len(rules)-1]; last.Proto != "" || last.ToPorts != (ruleset.PortRange{}) || last.Target != "MASQUERADE" {
		t.Errorf("last rule %+v, want the catch-all MASQUERADE for other protocols", last)
	}
}

func TestParsePortRanges(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []ruleset.PortRange
		wantErr string
	}{
		{in: "", want: nil},
		{in: "1024-29999,32768-65535", want: []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}},
		{in: " 2000 , 3000-3001", want: []ruleset.PortRange{{First: 2000, Last: 2000}, {First: 3000, Last: 3001}}},
		{in: "0-100", wantErr: "not a port"},
		{in: "100-65536", wantErr: "not a port"},
		{in: "2000-1000", wantErr: "write 1000-2000"},
		{in: "1000-2000,1500-2500", wantErr: "overlaps"},
		{in: "1000-", wantErr: "not a port"},
		{in: "a-b", wantErr: "not a port"},
	} {
		got, err := ruleset.ParsePortRanges(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePortRanges(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePortRanges(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestRandomFullySupported(t *testing.T) {
	for in, want := range map[string]bool{
		"iptables v1.4.21":                    false,
		"iptables v1.6.1":                     false,
		"iptables v1.6.2":                     true,
		"iptables v1.8.9 (nf_tables)\n":       true,
		"iptables v1.8.7 (legacy)":            true,
		"ip6tables-legacy v1.10.0 (legacy)\n": true,
	} {
		if got, err := RandomFullySupported(in); err != nil || got != want {
			t.Errorf("RandomFullySupported(%q) = %t, %v; want %t", in, got, err, want)
		}
	}
	for _, in := range []string{"", "iptables", "iptables v1.8", "iptables vX.Y.Z"} {
		if _, err := RandomFullySupported(in); err == nil {
			t.Errorf("RandomFullySupported(%q): no error", in)
		}
	}
}

func TestValidateChainName(t *testing.T) {
	for _, ok := range []string{"IP-MASQ-AGENT", "IP-MASQ", "MASQD-1234567890123456789012"} {
		if err := ValidateChainName(ok); err != nil {
			t.Errorf("ValidateChainName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A CHAIN", "MASQUERADE", "POSTROUTING", "X234567890123456789012345678901"} {
		if err := ValidateChainName(bad); err == nil {
			t.Errorf("ValidateChainName(%q): no error", bad)
		}
	}
}

func TestParseSave(t *testing.T) {
	const dump = `# Generated by iptables-save v1.8.9 on Mon Nov 23 12:00:00 2026
*filter
:INPUT ACCEPT [10:1000]
[1:2] -A INPUT -j IP-MASQ-AGENT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [5:300]
:IP-MASQ-AGENT - [0:0]
:OTHER - [0:0]
[3:180] -A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT
[0:0] -A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE
[0:0] -A POSTROUTING -m comment --comment "a \"quoted\" -j IP-MASQ-AGENT" -j OTHER
[0:0] -A POSTROUTING -j IP-MASQ-AGENT
[1:60] -A IP-MASQ-AGENT -d 169.254.0.0/16 -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN
[2:120] -A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully
[7:70] -A IP-MASQ-AGENT -p tcp -m comment --comment "x" -j MASQUERADE --to-ports 1024-2047
[0:0] -A OTHER -j RETURN
COMMIT
`
	s := parseSave(dump, "IP-MASQ-AGENT")
	if !s.NatTable || !s.Chain {
		t.Fatalf("NatTable %t, Chain %t; want both", s.NatTable, s.Chain)
	}
	if len(s.Rules) != 3 || !strings.HasPrefix(s.Rules[0], "-A IP-MASQ-AGENT -d 169.254.0.0/16 ") {
		t.Errorf("Rules = %q", s.Rules)
	}
	wantJumps := []string{
		`-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT`,
		`-A POSTROUTING -j IP-MASQ-AGENT`,
	}
	if !slices.Equal(s.Jumps, wantJumps) {
		t.Errorf("Jumps = %q, want %q", s.Jumps, wantJumps)
	}
	if want := (ruleset.Counter{Packets: 9, Bytes: 190}); s.Counter != want {
		t.Errorf("Counter = %+v, want %+v", s.Counter, want)
	}
	if s := parseSave(dump, "IP-MASQ"); s.Chain || len(s.Rules) != 0 || len(s.Jumps) != 0 {
		t.Errorf("chain IP-MASQ: %+v, want nothing", s)
	}
	if s := parseSave("", "IP-MASQ-AGENT"); s.NatTable || s.Chain {
		t.Errorf("empty dump: %+v", s)
	}
}

func TestSplitWords(t *testing.T) {
	got := splitWords(`-A X -m comment --comment "a \"b\" \\ c" -j  Y`)
	want := []string{"-A", "X", "-m", "comment", "--comment", `a "b" \ c`, "-j", "Y"}
	if !slices.Equal(got, want) {
		t.Errorf("splitWords = %q, want %q", got, want)
	}
}

// TestCompileIPTablesClusterCIDRs: the pod ranges (the key clusterCIDRs and --cluster-cidr) are RETURN rules
// after nonMasqueradeCIDRs' ones, one a prefix not already among them, IPv6 ones in the ip6tables chain.
func TestCompileIPTablesClusterCIDRs(t *testing.T) {
	opts := config.Options{EnableIPv6: true, ClusterCIDRs: []netip.Prefix{
		netip.MustParsePrefix("172.31.0.0/16"), netip.MustParsePrefix("fd00:10:64::/56"), netip.MustParsePrefix("10.0.0.0/8")}}
	cfg, _, err := config.Parse("ip-masq-agent", []byte("nonMasqueradeCIDRs: [10.0.0.0/8]\nclusterCIDRs: [100.64.0.0/10, 10.0.0.0/8]\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	r := CompileIPTables(cfg, IPTablesOptions{RandomFully: true, RandomFullySupported: true})
	returns := func(rules []IPTablesRule) []string {
		var out []string
		for _, rule := range rules {
			if rule.Target == "RETURN" {
				out = append(out, rule.Dst.String())
			}
		}
		return out
	}
	if d := gocmp.Diff([]string{"169.254.0.0/16", "10.0.0.0/8", "100.64.0.0/10", "172.31.0.0/16"}, returns(r.V4)); d != "" {
		t.Errorf("IPv4 RETURN rules (-want +got):\n%s", d)
	}
	if d := gocmp.Diff([]string{"fe80::/10", "fd00:10:64::/56"}, returns(r.V6)); d != "" {
		t.Errorf("IPv6 RETURN rules (-want +got):\n%s", d)
	}
	for _, rule := range r.V4 {
		if rule.Target == "RETURN" && rule.Comment != nonMasqComment {
			t.Errorf("rule %+v: comment %q, want upstream's %q", rule, rule.Comment, nonMasqComment)
		}
	}
	if last := r.V4[len(r.V4)-1]; last.Target != "MASQUERADE" || last.Dst.IsValid() {
		t.Errorf("last rule %+v, want the catch-all MASQUERADE", last)
	}
	payload := string(r.Payload(IPv4))
	if !strings.Contains(payload, "-d 172.31.0.0/16 -j RETURN") || strings.Index(payload, "172.31.0.0/16") > strings.Index(payload, "-j MASQUERADE") {
		t.Errorf("payload has no RETURN for 172.31.0.0/16 before the MASQUERADE:\n%s", payload)
	}
}

// TestUnsupported: ip-masq-agent's chain cannot restrict masquerading by source, so a config with
// masqueradeSourceCIDRs is refused with ruleset.ErrNotSupported, naming where the key is and what to do.
func TestUnsupported(t *testing.T) {
	cfg, _, err := config.Parse("ip-masq-agent", []byte("nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = Unsupported(cfg)
	if !errors.Is(err, ruleset.ErrNotSupported) || !strings.Contains(err.Error(), "ip-masq-agent:2: masqueradeSourceCIDRs (10.244.0.0/16)") ||
		!strings.Contains(err.Error(), "--mode=nftables") {
		t.Errorf("Unsupported = %v; want ErrNotSupported naming ip-masq-agent:2, the key and --mode=nftables", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"egressInterfaces: [eth0]\n", "ip-masq-agent:1: egressInterfaces (eth0)"},
		{"nonMasqueradeCIDRs: [10.0.0.0/8]\nsnatTo: [192.0.2.10]\n", "ip-masq-agent:2: snatTo (192.0.2.10)"},
		{"snatToInterface: eth0\n", "ip-masq-agent:1: snatToInterface (eth0)"},
	} {
		cfg, _, err := config.Parse("ip-masq-agent", []byte(tc.in), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Unsupported(cfg); !errors.Is(err, ruleset.ErrNotSupported) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "--mode=nftables") {
			t.Errorf("Unsupported(%q) = %v; want ErrNotSupported naming %q and --mode=nftables", tc.in, err, tc.want)
		}
	}
	if err := Unsupported(config.Default(config.Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}})); err != nil {
		t.Errorf("Unsupported(defaults with --cluster-cidr) = %v, want nil", err)
	}
}
