package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// flagged is a CIDR given with --cluster-cidr.
func flagged(prefix string) CIDR {
	return CIDR{Prefix: netip.MustParsePrefix(prefix), Source: Source{Flag: ClusterCIDRFlag}}
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// TestParseClusterCIDRs: the key clusterCIDRs and the flag --cluster-cidr add up (the key's entries first,
// then the flag's not already listed), beside nonMasqueradeCIDRs and not counted against cidrLimit; a config
// without either means what it meant.
func TestParseClusterCIDRs(t *testing.T) {
	base := func(cluster ...CIDR) Config {
		return Config{NonMasqueradeCIDRs: rfc1918(), ClusterCIDRs: cluster, CIDRLimit: DefaultCIDRLimit,
			ResyncInterval: DefaultResyncInterval, Files: []string{file}}
	}
	tests := []struct {
		name string
		in   string
		opts Options
		want Config
		err  *wantErr
	}{
		{name: "neither", in: "masqLinkLocal: false\n", want: base()},
		{name: "key", in: "clusterCIDRs:\n  - 10.64.0.0/14\n  - 100.64.0.0/10\n",
			want: base(at("10.64.0.0/14", 2), at("100.64.0.0/10", 3))},
		{name: "key in flow style", in: "clusterCIDRs: [100.64.0.0/10]\n", want: base(at("100.64.0.0/10", 1))},
		{name: "flag", in: "masqLinkLocal: false\n", opts: Options{ClusterCIDRs: prefixes("100.64.0.0/10")},
			want: base(flagged("100.64.0.0/10"))},
		{name: "key and flag add up, a prefix in both cited by the key",
			in:   "clusterCIDRs: [100.64.0.0/10, 10.64.0.0/14]\n",
			opts: Options{ClusterCIDRs: prefixes("10.64.0.0/14", "172.31.0.0/16")},
			want: base(at("100.64.0.0/10", 1), at("10.64.0.0/14", 1), flagged("172.31.0.0/16"))},
		{name: "an empty key keeps the flag", in: "clusterCIDRs: []\n", opts: Options{ClusterCIDRs: prefixes("100.64.0.0/10")},
			want: base(flagged("100.64.0.0/10"))},
		{name: "null keeps the flag", in: "clusterCIDRs: ~\n", opts: Options{ClusterCIDRs: prefixes("100.64.0.0/10")},
			want: base(flagged("100.64.0.0/10"))},
		{name: "IPv6 from the flag is left out without IPv6", in: "masqLinkLocal: false\n",
			opts: Options{ClusterCIDRs: prefixes("100.64.0.0/10", "fd00:10:64::/56")},
			want: base(flagged("100.64.0.0/10"))},
		{name: "IPv6 from the flag once the file enables IPv6", in: "enableIPv6: true\n",
			opts: Options{ClusterCIDRs: prefixes("100.64.0.0/10", "fd00:10:64::/56")},
			want: func() Config {
				c := base(flagged("100.64.0.0/10"), flagged("fd00:10:64::/56"))
				c.EnableIPv6 = true
				return c
			}()},
		{name: "not counted against cidrLimit", in: "cidrLimit: 1\nnonMasqueradeCIDRs: [10.0.0.0/8]\nclusterCIDRs: [100.64.0.0/10, 100.128.0.0/16]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2)}, ClusterCIDRs: []CIDR{at("100.64.0.0/10", 3), at("100.128.0.0/16", 3)},
				CIDRLimit: 1, ResyncInterval: time.Minute, Files: []string{file}}},
		{name: "misaligned", in: "clusterCIDRs:\n  - 10.64.0.1/14\n",
			err: &wantErr{key: "clusterCIDRs[0]", line: 2, value: "10.64.0.1/14", msg: "not aligned", fix: "write 10.64.0.0/14"}},
		{name: "not a CIDR", in: "clusterCIDRs: [10.64.0.0]\n",
			err: &wantErr{key: "clusterCIDRs[0]", line: 1, value: "10.64.0.0", msg: "not a valid CIDR", fix: "add a prefix length: 10.64.0.0/32"}},
		{name: "IPv6 in the key without IPv6", in: "clusterCIDRs: [fd00::/48]\n",
			err: &wantErr{key: "clusterCIDRs[0]", line: 1, value: "fd00::/48", msg: "IPv6 is not enabled", fix: "--enable-ipv6"}},
		{name: "a string, not a list", in: "clusterCIDRs: 10.64.0.0/14\n",
			err: &wantErr{key: "clusterCIDRs", line: 1, value: "10.64.0.0/14", msg: "must be a list of CIDRs", fix: "clusterCIDRs: [10.64.0.0/14]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, fast := range []bool{true, false} {
				cfg, _, err := parse(file, tt.in, tt.opts, fast)
				if tt.err != nil {
					checkError(t, err, tt.err)
					continue
				}
				if err != nil {
					t.Fatalf("fast=%v: %v", fast, err)
				}
				if d := diff(tt.want, cfg); d != "" {
					t.Errorf("fast=%v: (-want +got):\n%s", fast, d)
				}
			}
		})
	}
}

// TestDefaultClusterCIDRs: with no file (Load of a missing path, an empty ConfigMap) the flag still counts.
func TestDefaultClusterCIDRs(t *testing.T) {
	opts := Options{ClusterCIDRs: prefixes("100.64.0.0/10", "fd00:10:64::/56")}
	if d := diff([]CIDR{flagged("100.64.0.0/10")}, Default(opts).ClusterCIDRs); d != "" {
		t.Errorf("IPv4 only (-want +got):\n%s", d)
	}
	opts.EnableIPv6 = true
	if d := diff([]CIDR{flagged("100.64.0.0/10"), flagged("fd00:10:64::/56")}, Default(opts).ClusterCIDRs); d != "" {
		t.Errorf("with IPv6 (-want +got):\n%s", d)
	}
	if got := Default(Options{}).ClusterCIDRs; got != nil {
		t.Errorf("without the flag: %v, want none", got)
	}
}

// TestParseClusterCIDRsFlag: one value of --cluster-cidr as kube-proxy takes it.
func TestParseClusterCIDRsFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    []netip.Prefix
		msg     string // error substring; "" for success
		fix     string
		errText string // the whole error, when set
	}{
		{in: "10.64.0.0/14", want: prefixes("10.64.0.0/14")},
		{in: "10.64.0.0/14,fd00:10:64::/56", want: prefixes("10.64.0.0/14", "fd00:10:64::/56")},
		{in: "10.64.0.0/14, 100.64.0.0/10", want: prefixes("10.64.0.0/14", "100.64.0.0/10")},
		{in: "10.64.0.1/14", msg: "not aligned", fix: "write 10.64.0.0/14",
			errText: `--cluster-cidr "10.64.0.1/14": CIDR is not aligned to its prefix length; write 10.64.0.0/14`},
		{in: "10.64.0.0", msg: "not a valid CIDR", fix: "10.64.0.0/32"},
		{in: "10.64.0.0/14,", msg: "empty prefix", fix: "separated by commas"},
		{in: "", msg: "empty prefix"},
		{in: "::ffff:10.0.0.0/104", msg: "IPv4-mapped", fix: "10.0.0.0/8"},
	}
	for _, tt := range tests {
		got, err := ParseClusterCIDRs(tt.in)
		if tt.msg == "" {
			if err != nil {
				t.Errorf("ParseClusterCIDRs(%q): %v", tt.in, err)
			} else if d := diff(tt.want, got); d != "" {
				t.Errorf("ParseClusterCIDRs(%q) (-want +got):\n%s", tt.in, d)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Source.Flag != ClusterCIDRFlag || !strings.Contains(e.Msg, tt.msg) || !strings.Contains(e.Fix, tt.fix) {
			t.Errorf("ParseClusterCIDRs(%q) = %v, %v; want an *Error of %s: %q, fix %q", tt.in, got, err, ClusterCIDRFlag, tt.msg, tt.fix)
			continue
		}
		if tt.errText != "" && err.Error() != tt.errText {
			t.Errorf("ParseClusterCIDRs(%q): error\n%s\nwant\n%s", tt.in, err, tt.errText)
		}
	}
}

// TestMergeClusterCIDRs: a directory's files give the union of their clusterCIDRs, the flag's once.
func TestMergeClusterCIDRs(t *testing.T) {
	opts := Options{ClusterCIDRs: prefixes("172.31.0.0/16")}
	a, _, err := Parse("a", []byte("clusterCIDRs: [100.64.0.0/10]\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Parse("b", []byte("clusterCIDRs: [100.64.0.0/10, 10.64.0.0/14]\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []CIDR{
		{Prefix: netip.MustParsePrefix("100.64.0.0/10"), Source: Source{File: "a", Line: 1}},
		flagged("172.31.0.0/16"),
		{Prefix: netip.MustParsePrefix("10.64.0.0/14"), Source: Source{File: "b", Line: 1}},
	}
	if d := diff(want, Merge(a, b).ClusterCIDRs); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestLoaderClusterCIDRsOption: the Loader parses a file again when only --cluster-cidr changed.
func TestLoaderClusterCIDRsOption(t *testing.T) {
	path := t.TempDir() + "/ip-masq-agent"
	write(t, path, "masqLinkLocal: false\n")
	var l Loader
	if _, _, err := l.Load(path, Options{}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := l.Load(path, Options{ClusterCIDRs: prefixes("100.64.0.0/10")})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]CIDR{flagged("100.64.0.0/10")}, cfg.ClusterCIDRs); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
