package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// wantErr is what a row expects of a failed Parse: Key, Line and Value exactly, Msg and Fix as substrings.
type wantErr struct {
	key   string
	line  int
	value string
	msg   string
	fix   string
}

func TestParse(t *testing.T) {
	v6 := Options{EnableIPv6: true}
	tests := []struct {
		name  string
		in    string
		opts  Options
		want  Config    // on success
		warns []Warning // on success
		err   *wantErr  // nil for success
	}{
		// Files with nothing in them are the defaults.
		{
			name: "empty file",
			in:   "",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "whitespace only",
			in:   "  \n\n   \n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "comments only",
			in:   "# ip-masq-agent config\n  # nothing set yet\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "document marker only",
			in:   "---\n# empty\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "null document",
			in:   "~\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "JSON null",
			in:   "null",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "JSON empty object",
			in:   "{}",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "empty file with all reserved ranges",
			in:   "",
			opts: Options{NoMasqAllReservedRanges: true},
			want: Config{NonMasqueradeCIDRs: allReserved(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "empty file with IPv6",
			in:   "",
			opts: v6,
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, EnableIPv6: true, Files: []string{file}},
		},

		// The scenarios' configs.
		{
			name: "GKE private endpoint, key spelled nonMasqueradeCIDRS",
			in: `nonMasqueradeCIDRS:
  - 172.16.0.0/12
  - 192.168.0.0/16
  - 100.64.0.0/10
  - 192.0.0.0/24
  - 192.0.2.0/24
  - 192.88.99.0/24
  - 198.18.0.0/15
  - 198.51.100.0/24
  - 203.0.113.0/24
  - 240.0.0.0/4
  - 10.1.1.0/24
masqLinkLocal : false
resyncInterval : 60s
`,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{
					at("172.16.0.0/12", 2), at("192.168.0.0/16", 3), at("100.64.0.0/10", 4), at("192.0.0.0/24", 5),
					at("192.0.2.0/24", 6), at("192.88.99.0/24", 7), at("198.18.0.0/15", 8), at("198.51.100.0/24", 9),
					at("203.0.113.0/24", 10), at("240.0.0.0/4", 11), at("10.1.1.0/24", 12),
				},
				CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file},
			},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "nonMasqueradeCIDRS", Msg: "keys match without regard to case; write nonMasqueradeCIDRs"},
			},
		},
		{
			name: "Cilium on TKE, with masqLinkLocal",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/16\n  - 172.18.0.0/16\n  - 192.168.0.0/17\nmasqLinkLocal: true\n",
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/16", 2), at("172.18.0.0/16", 3), at("192.168.0.0/17", 4)},
				CIDRLimit:          64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{file},
			},
		},

		// Every key, in YAML and in JSON.
		{
			name: "every key, YAML",
			in: `nonMasqueradeCIDRs:
  - 10.0.0.0/8
  - fd00::/8
masqueradeCIDRs:
  - 10.96.0.0/12
cidrLimit: 10
masqLinkLocal: true
masqLinkLocalIPv6: true
resyncInterval: 1m30s
enableIPv6: true
`,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("fd00::/8", 3)},
				MasqueradeCIDRs:    []CIDR{at("10.96.0.0/12", 5)},
				CIDRLimit:          10, MasqLinkLocal: true, MasqLinkLocalIPv6: true,
				ResyncInterval: 90 * time.Second, EnableIPv6: true, Files: []string{file},
			},
		},
		{
			name: "every key, JSON on several lines",
			in: `{
  "nonMasqueradeCIDRs": ["10.0.0.0/8", "192.168.0.0/16"],
  "masqueradeCIDRs": ["10.96.0.0/12"],
  "cidrLimit": 5,
  "masqLinkLocal": false,
  "masqLinkLocalIPv6": true,
  "resyncInterval": "30s",
  "enableIPv6": false
}`,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("192.168.0.0/16", 2)},
				MasqueradeCIDRs:    []CIDR{at("10.96.0.0/12", 3)},
				CIDRLimit:          5, MasqLinkLocalIPv6: true, ResyncInterval: 30 * time.Second, Files: []string{file},
			},
		},
		{
			name: "JSON on one line",
			in:   `{"nonMasqueradeCIDRs":["10.0.0.0/8"],"masqLinkLocal":true,"resyncInterval":"5s"}`,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)},
				CIDRLimit:          64, MasqLinkLocal: true, ResyncInterval: 5 * time.Second, Files: []string{file},
			},
		},
		{
			name: "JSON with IPv6 enabled in the file, after the list",
			in:   `{"nonMasqueradeCIDRs": ["fe80::/10", "10.0.0.0/8"], "enableIPv6": true}`,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("fe80::/10", 1), at("10.0.0.0/8", 1)},
				CIDRLimit:          64, ResyncInterval: 60 * time.Second, EnableIPv6: true, Files: []string{file},
			},
		},

		// Upstream's odd corners.
		{
			name: "keys in any case",
			in:   "NONMASQUERADECIDRS: [10.0.0.0/8]\nCidrLimit: 3\nmasqlinklocal: true\nMasqLinkLocalIpv6: true\nRESYNCINTERVAL: 10s\n",
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)},
				CIDRLimit:          3, MasqLinkLocal: true, MasqLinkLocalIPv6: true, ResyncInterval: 10 * time.Second,
				Files: []string{file},
			},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "NONMASQUERADECIDRS", Msg: "keys match without regard to case; write nonMasqueradeCIDRs"},
				{Source: Source{File: file, Line: 2}, Key: "CidrLimit", Msg: "keys match without regard to case; write cidrLimit"},
				{Source: Source{File: file, Line: 3}, Key: "masqlinklocal", Msg: "keys match without regard to case; write masqLinkLocal"},
				{Source: Source{File: file, Line: 4}, Key: "MasqLinkLocalIpv6", Msg: "keys match without regard to case; write masqLinkLocalIPv6"},
				{Source: Source{File: file, Line: 5}, Key: "RESYNCINTERVAL", Msg: "keys match without regard to case; write resyncInterval"},
			},
		},
		{
			name: "Kelvin sign folds to k, as in encoding/json",
			in:   "masqLin\u212ALocal: true\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinKLocal", Msg: "keys match without regard to case; write masqLinkLocal"},
			},
		},
		{
			name: "only cidrLimit: the rest are defaults",
			in:   "cidrLimit: 10\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 10, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "only masqLinkLocal with all reserved ranges",
			in:   "masqLinkLocal: true\n",
			opts: Options{NoMasqAllReservedRanges: true},
			want: Config{NonMasqueradeCIDRs: allReserved(), CIDRLimit: 64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "a file list replaces the reserved ranges",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8]\n",
			opts: Options{NoMasqAllReservedRanges: true},
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "empty value is an empty list",
			in:   "nonMasqueradeCIDRs:\nmasqLinkLocal: true\n",
			want: Config{CIDRLimit: 64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "tilde is an empty list",
			in:   "nonMasqueradeCIDRs: ~\n",
			want: Config{CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "null is an empty list",
			in:   "nonMasqueradeCIDRs: null\n",
			want: Config{CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "[] is an empty list",
			in:   "nonMasqueradeCIDRs: []\n",
			want: Config{CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "JSON null list",
			in:   `{"nonMasqueradeCIDRs": null, "masqueradeCIDRs": null}`,
			want: Config{CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "masqueradeCIDRs empty forms",
			in:   "masqueradeCIDRs: []\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "masqueradeCIDRs inside a non-masquerade range",
			in:   "masqueradeCIDRs:\n  - 10.96.0.0/12\n  - 192.168.1.0/24\n",
			want: Config{
				NonMasqueradeCIDRs: rfc1918(),
				MasqueradeCIDRs:    []CIDR{at("10.96.0.0/12", 2), at("192.168.1.0/24", 3)},
				CIDRLimit:          64, ResyncInterval: 60 * time.Second, Files: []string{file},
			},
		},
		{
			name: "comments everywhere",
			in:   "# head\nnonMasqueradeCIDRs: # the list\n  - 10.0.0.0/8 # pods\n  # - 172.16.0.0/12\n  - 192.168.0.0/16\n# tail\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 3), at("192.168.0.0/16", 5)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "quoted CIDRs and quoted duration",
			in:   "nonMasqueradeCIDRs:\n  - \"10.0.0.0/8\"\n  - '172.16.0.0/12'\nresyncInterval: \"2m\"\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("172.16.0.0/12", 3)}, CIDRLimit: 64, ResyncInterval: 2 * time.Minute, Files: []string{file}},
		},
		{
			name: "flow list over lines",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8,\n  172.16.0.0/12]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1), at("172.16.0.0/12", 2)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "list not indented under its key",
			in:   "nonMasqueradeCIDRs:\n- 10.0.0.0/8\n- 172.16.0.0/12\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("172.16.0.0/12", 3)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "duplicate prefixes are kept, as upstream",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8, 10.0.0.0/8]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1), at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "host and default routes",
			in:   "nonMasqueradeCIDRs: [0.0.0.0/0, 10.1.2.3/32]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("0.0.0.0/0", 1), at("10.1.2.3/32", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "IPv6 prefixes with --enable-ipv6",
			in:   "nonMasqueradeCIDRs:\n  - fd00::/8\n  - 2001:db8::/32\nmasqueradeCIDRs:\n  - \"::/0\"\n",
			opts: v6,
			want: Config{
				NonMasqueradeCIDRs: []CIDR{at("fd00::/8", 2), at("2001:db8::/32", 3)},
				MasqueradeCIDRs:    []CIDR{at("::/0", 5)},
				CIDRLimit:          64, ResyncInterval: 60 * time.Second, EnableIPv6: true, Files: []string{file},
			},
		},
		{
			name: "enableIPv6: false cannot turn --enable-ipv6 off",
			in:   "enableIPv6: false\nnonMasqueradeCIDRs: [fd00::/8]\n",
			opts: v6,
			want: Config{NonMasqueradeCIDRs: []CIDR{at("fd00::/8", 2)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, EnableIPv6: true, Files: []string{file}},
			warns: []Warning{{Source: Source{File: file, Line: 1}, Key: "enableIPv6",
				Msg: "enableIPv6: false does not turn off --enable-ipv6; IPv6 stays enabled"}},
		},
		{
			name: "cidrLimit 0 with an empty list",
			in:   "cidrLimit: 0\nnonMasqueradeCIDRs: []\n",
			want: Config{CIDRLimit: 0, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "count equal to cidrLimit, limit after the list",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8, 172.16.0.0/12]\ncidrLimit: 2\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1), at("172.16.0.0/12", 1)}, CIDRLimit: 2, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "cidrLimit in hex",
			in:   "cidrLimit: 0x10\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 16, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "cidrLimit", Msg: "\"0x10\" is read as 16; write cidrLimit: 16"},
			},
		},
		{
			name: "booleans in other cases",
			in:   "masqLinkLocal: True\nmasqLinkLocalIPv6: TRUE\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, MasqLinkLocal: true, MasqLinkLocalIPv6: true, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinkLocal", Msg: "\"True\" means true in YAML 1.1; write masqLinkLocal: true"},
				{Source: Source{File: file, Line: 2}, Key: "masqLinkLocalIPv6", Msg: "\"TRUE\" means true in YAML 1.1; write masqLinkLocalIPv6: true"},
			},
		},
		{
			name: "UTF-8 byte order mark and CRLF line ends",
			in:   "\ufeffnonMasqueradeCIDRs:\r\n  - 10.0.0.0/8\r\nresyncInterval: 500ms\r\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2)}, CIDRLimit: 64, ResyncInterval: 500 * time.Millisecond, Files: []string{file}},
		},
		{
			name: "document start and end markers",
			in:   "---\nnonMasqueradeCIDRs: [10.0.0.0/8]\n...\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "anchor without alias is harmless",
			in:   "nonMasqueradeCIDRs: &pods [10.0.0.0/8]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "explicit string tag",
			in:   "nonMasqueradeCIDRs: [!!str 10.0.0.0/8]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "unknown keys are ignored with a warning",
			in:   "nonMasqueradeCIDR: [10.0.0.0/8]\nfoo: {bar: [1, 2]}\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "nonMasqueradeCIDR", Msg: "unknown key, ignored; did you mean nonMasqueradeCIDRs?"},
				{Source: Source{File: file, Line: 2}, Key: "foo", Msg: "unknown key, ignored"},
			},
		},

		// CIDR errors.
		{
			name: "unaligned CIDR",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 10.0.0.1/8\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[1]", line: 3, value: "10.0.0.1/8", msg: "not aligned", fix: "write 10.0.0.0/8"},
		},
		{
			name: "unaligned IPv6 CIDR",
			in:   "nonMasqueradeCIDRs: [fe80::1/10]\n",
			opts: v6,
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 1, value: "fe80::1/10", msg: "not aligned", fix: "write fe80::/10"},
		},
		{
			name: "unaligned masqueradeCIDR",
			in:   "masqueradeCIDRs:\n  - 10.96.0.1/12\n",
			err:  &wantErr{key: "masqueradeCIDRs[0]", line: 2, value: "10.96.0.1/12", msg: "not aligned", fix: "write 10.96.0.0/12"},
		},
		{
			name: "key in an error is as written",
			in:   "NonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.168.1.1/16\n",
			err:  &wantErr{key: "NonMasqueradeCIDRs[1]", line: 3, value: "192.168.1.1/16", msg: "not aligned", fix: "write 192.168.0.0/16"},
		},
		{
			name: "prefix length out of range",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/33\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 2, value: "10.0.0.0/33", msg: "not a valid CIDR: prefix length out of range", fix: "e.g. 10.0.0.0/8"},
		},
		{
			name: "address without prefix length",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 10.1.2.3\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[1]", line: 3, value: "10.1.2.3", msg: "not a valid CIDR", fix: "add a prefix length: 10.1.2.3/32"},
		},
		{
			name: "not an address",
			in:   "nonMasqueradeCIDRs: [pods/8]\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 1, value: "pods/8", msg: "not a valid CIDR", fix: "address and a prefix length"},
		},
		{
			name: "IPv6 zone",
			in:   "nonMasqueradeCIDRs: [\"fe80::%eth0/64\"]\n",
			opts: v6,
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 1, value: "fe80::%eth0/64", msg: "not a valid CIDR"},
		},
		{
			name: "IPv6 without --enable-ipv6",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - fd00::/8\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[1]", line: 3, value: "fd00::/8", msg: "IPv6 is not enabled", fix: "--enable-ipv6"},
		},
		{
			name: "IPv6 masqueradeCIDR without --enable-ipv6",
			in:   "masqueradeCIDRs:\n  - 2001:db8::/32\n",
			err:  &wantErr{key: "masqueradeCIDRs[0]", line: 2, value: "2001:db8::/32", msg: "IPv6 is not enabled", fix: "--enable-ipv6"},
		},
		{
			name: "IPv4-mapped IPv6 prefix",
			in:   "nonMasqueradeCIDRs:\n  - \"::ffff:10.0.0.0/104\"\n",
			opts: v6,
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 2, value: "::ffff:10.0.0.0/104", msg: "IPv4-mapped", fix: "write the IPv4 prefix instead: 10.0.0.0/8"},
		},
		{
			name: "IPv4-mapped IPv6 prefix, unaligned and without IPv6",
			in:   "nonMasqueradeCIDRs:\n  - \"::ffff:0.0.0.1/96\"\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 2, value: "::ffff:0.0.0.1/96", msg: "IPv4-mapped", fix: "0.0.0.0/0"},
		},
		{
			name: "more CIDRs than cidrLimit",
			in:   "cidrLimit: 2\nnonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 172.16.0.0/12\n  - 192.168.0.0/16\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs", line: 2, msg: "3 CIDRs is more than cidrLimit 2", fix: "raise the limit (cidrLimit: 3) or merge ranges"},
		},
		{
			name: "cidrLimit below the default list",
			in:   "cidrLimit: 1\n",
			err:  &wantErr{key: "cidrLimit", line: 1, msg: "3 CIDRs is more than cidrLimit 1", fix: "cidrLimit: 3"},
		},

		// List item errors.
		{
			name: "empty list item: the default list's entry at its position, as upstream",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  -\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("172.16.0.0/12", 3)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 3}, Key: "nonMasqueradeCIDRs[1]", Msg: "empty list item, read as 172.16.0.0/12, the default list's entry at this position (as by ip-masq-agent); write 172.16.0.0/12 or remove the \"-\" line"},
			},
		},
		{
			name: "empty first list item",
			in:   "nonMasqueradeCIDRs:\n  - \n  - 10.0.0.0/8\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("10.0.0.0/8", 3)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 2}, Key: "nonMasqueradeCIDRs[0]", Msg: "empty list item, read as 10.0.0.0/8, the default list's entry at this position (as by ip-masq-agent); write 10.0.0.0/8 or remove the \"-\" line"},
			},
		},
		{
			name: "tilde list item with all reserved ranges",
			in:   "nonMasqueradeCIDRs:\n  - ~\n  - ~\n  - ~\n  - null\n",
			opts: Options{NoMasqAllReservedRanges: true},
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2), at("172.16.0.0/12", 3), at("192.168.0.0/16", 4), at("100.64.0.0/10", 5)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 2}, Key: "nonMasqueradeCIDRs[0]", Msg: "empty list item, read as 10.0.0.0/8, the default list's entry at this position (as by ip-masq-agent); write 10.0.0.0/8 or remove the \"-\" line"},
				{Source: Source{File: file, Line: 3}, Key: "nonMasqueradeCIDRs[1]", Msg: "empty list item, read as 172.16.0.0/12, the default list's entry at this position (as by ip-masq-agent); write 172.16.0.0/12 or remove the \"-\" line"},
				{Source: Source{File: file, Line: 4}, Key: "nonMasqueradeCIDRs[2]", Msg: "empty list item, read as 192.168.0.0/16, the default list's entry at this position (as by ip-masq-agent); write 192.168.0.0/16 or remove the \"-\" line"},
				{Source: Source{File: file, Line: 5}, Key: "nonMasqueradeCIDRs[3]", Msg: "empty list item, read as 100.64.0.0/10, the default list's entry at this position (as by ip-masq-agent); write 100.64.0.0/10 or remove the \"-\" line"},
			},
		},
		{
			name: "empty list item past the default list's end",
			in:   "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 10.0.0.0/8\n  - 10.0.0.0/8\n  -\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[3]", line: 5, msg: "empty list item (ip-masq-agent reads it as an empty CIDR and refuses it too)", fix: "remove the empty"},
		},
		{
			name: "JSON null masqueradeCIDRs item is ignored",
			in:   `{"masqueradeCIDRs": ["10.0.0.0/8", null]}`,
			want: Config{NonMasqueradeCIDRs: rfc1918(), MasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqueradeCIDRs[1]", Msg: "empty list item, ignored; remove the \"-\" line or write a CIDR"},
			},
		},
		{
			name: "number list item",
			in:   "nonMasqueradeCIDRs:\n  - 10\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 2, value: "10", msg: "list item is a whole number, not a CIDR string", fix: "10.0.0.0/8"},
		},
		{
			name: "boolean list item",
			in:   "nonMasqueradeCIDRs: [true]\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 1, value: "true", msg: "list item is a boolean"},
		},
		{
			name: "mapping list item",
			in:   "nonMasqueradeCIDRs:\n  - cidr: 10.0.0.0/8\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 2, msg: "list item is a mapping"},
		},
		{
			name: "nested list item",
			in:   "nonMasqueradeCIDRs: [[10.0.0.0/8]]\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs[0]", line: 1, msg: "list item is a list"},
		},
		{
			name: "tagged list item: the tag is dropped, as upstream",
			in:   "nonMasqueradeCIDRs: [!cidr 10.0.0.0/8]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "list is a string",
			in:   "nonMasqueradeCIDRs: 10.0.0.0/8\n",
			err:  &wantErr{key: "nonMasqueradeCIDRs", line: 1, value: "10.0.0.0/8", msg: "must be a list of CIDRs, not a string", fix: "nonMasqueradeCIDRs: [10.0.0.0/8]"},
		},
		{
			name: "list is a mapping",
			in:   "masqueradeCIDRs:\n  pods: 10.0.0.0/8\n",
			err:  &wantErr{key: "masqueradeCIDRs", line: 2, msg: "must be a list of CIDRs, not a mapping"},
		},

		// Scalar errors.
		{
			name: "resyncInterval zero: the default, with a warning",
			in:   "resyncInterval: 0s\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "resyncInterval", Msg: "0s is not more than zero (ip-masq-agent would re-sync without pause); using the default 1m0s: write a positive duration such as 60s"},
			},
		},
		{
			name: "resyncInterval negative: the default, with a warning",
			in:   "cidrLimit: 64\nresyncInterval: -5s\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 2}, Key: "resyncInterval", Msg: "-5s is not more than zero (ip-masq-agent would re-sync without pause); using the default 1m0s: write a positive duration such as 60s"},
			},
		},
		{
			name: "resyncInterval unparsable",
			in:   "resyncInterval: soon\n",
			err:  &wantErr{key: "resyncInterval", line: 1, value: "soon", msg: "not a valid duration", fix: "resyncInterval: 60s"},
		},
		{
			name: "resyncInterval without unit",
			in:   "resyncInterval: 60\n",
			err:  &wantErr{key: "resyncInterval", line: 1, value: "60", msg: "must be a duration string, not a whole number", fix: "resyncInterval: 60s"},
		},
		{
			name: "resyncInterval JSON number",
			in:   `{"resyncInterval": 1.5}`,
			err:  &wantErr{key: "resyncInterval", line: 1, value: "1.5", msg: "must be a duration string", fix: "resyncInterval: 60s"},
		},
		{
			name: "resyncInterval empty",
			in:   "resyncInterval:\n",
			err:  &wantErr{key: "resyncInterval", line: 1, msg: "must be a duration, not empty", fix: "remove the line to keep the default"},
		},
		{
			name: "resyncInterval a timestamp",
			in:   "resyncInterval: 2024-01-01\n",
			err:  &wantErr{key: "resyncInterval", line: 1, value: "2024-01-01", msg: "not a valid duration"},
		},
		{
			name: "resyncInterval a list",
			in:   "resyncInterval: [60s]\n",
			err:  &wantErr{key: "resyncInterval", line: 1, msg: "not a list"},
		},
		{
			name: "cidrLimit negative",
			in:   "cidrLimit: -1\n",
			err:  &wantErr{key: "cidrLimit", line: 1, value: "-1", msg: "must not be negative", fix: "cidrLimit: 64"},
		},
		{
			name: "cidrLimit quoted",
			in:   "cidrLimit: \"64\"\n",
			err:  &wantErr{key: "cidrLimit", line: 1, value: "64", msg: "not a string", fix: "write cidrLimit: 64, unquoted"},
		},
		{
			name: "cidrLimit fraction",
			in:   "cidrLimit: 1.5\n",
			err:  &wantErr{key: "cidrLimit", line: 1, value: "1.5", msg: "must be a whole number, not a non-integer number"},
		},
		{
			name: "cidrLimit too large",
			in:   "cidrLimit: 9223372036854775808\n",
			err:  &wantErr{key: "cidrLimit", line: 1, value: "9223372036854775808", msg: "number is too large"},
		},
		{
			name: "cidrLimit empty keeps the default",
			in:   "cidrLimit: ~\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "cidrLimit", Msg: "empty, so the default stays; write a value (cidrLimit: ...) or remove the line"},
			},
		},
		{
			name: "masqLinkLocal yes is true in YAML 1.1",
			in:   "masqLinkLocal: yes\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), MasqLinkLocal: true, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinkLocal", Msg: "\"yes\" means true in YAML 1.1; write masqLinkLocal: true"},
			},
		},
		{
			name: "masqLinkLocal off is false in YAML 1.1",
			in:   "masqLinkLocal: off\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinkLocal", Msg: "\"off\" means false in YAML 1.1; write masqLinkLocal: false"},
			},
		},
		{
			name: "masqLinkLocal quoted true",
			in:   `{"masqLinkLocal": "true"}`,
			err:  &wantErr{key: "masqLinkLocal", line: 1, value: "true", msg: "not a string", fix: "write masqLinkLocal: true, unquoted"},
		},
		{
			name: "masqLinkLocalIPv6 number",
			in:   "masqLinkLocalIPv6: 1\n",
			err:  &wantErr{key: "masqLinkLocalIPv6", line: 1, value: "1", msg: "not a whole number", fix: "masqLinkLocalIPv6: true or masqLinkLocalIPv6: false"},
		},
		{
			name: "masqLinkLocalIPv6 empty keeps the default",
			in:   "masqLinkLocalIPv6:\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinkLocalIPv6", Msg: "empty, so the default stays; write a value (masqLinkLocalIPv6: ...) or remove the line"},
			},
		},
		{
			name: "enableIPv6 on, read before the list that needs it",
			in:   "nonMasqueradeCIDRs: [fd00::/8]\nenableIPv6: on\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("fd00::/8", 1)}, EnableIPv6: true, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 2}, Key: "enableIPv6", Msg: "\"on\" means true in YAML 1.1; write enableIPv6: true"},
			},
		},
		{
			name: "the first error in the file is reported",
			in:   "resyncInterval: soon\nnonMasqueradeCIDRs: [10.0.0.1/8]\ncidrLimit: -1\n",
			err:  &wantErr{key: "resyncInterval", line: 1, value: "soon", msg: "not a valid duration"},
		},

		// File structure errors.
		{
			name: "file is a list",
			in:   "- 10.0.0.0/8\n- 172.16.0.0/12\n",
			err:  &wantErr{line: 1, msg: "the file is a list, but it must be a mapping", fix: "nonMasqueradeCIDRs:"},
		},
		{
			name: "file is a string",
			in:   "\n10.0.0.0/8\n",
			err:  &wantErr{line: 2, value: "10.0.0.0/8", msg: "the file is a string, but it must be a mapping"},
		},
		{
			name: "JSON array",
			in:   `["10.0.0.0/8"]`,
			err:  &wantErr{line: 1, msg: "the file is a list"},
		},
		{
			name: "two documents: the first is read, as upstream",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8]\n---\nmasqLinkLocal: true\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 2}, Key: "", Msg: "more YAML follows the first document (after a \"---\" or \"...\" line); only the first is read, as by ip-masq-agent, and the rest is ignored: remove it or merge it into the first"},
			},
		},
		{
			name: "trailing document marker",
			in:   "masqLinkLocal: true\n---\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), MasqLinkLocal: true, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "duplicate key: the last wins, as upstream",
			in:   "cidrLimit: 5\nmasqLinkLocal: true\ncidrLimit: 6\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), MasqLinkLocal: true, CIDRLimit: 6, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "cidrLimit", Msg: "cidrLimit is set again on line 3, whose value is used (as by ip-masq-agent); keep only one"},
			},
		},
		{
			name: "duplicate key in another case: encoding/json's order decides",
			in:   "nonMasqueradeCIDRs: [10.0.0.0/8]\nnonmasqueradecidrs: [172.16.0.0/12]\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("172.16.0.0/12", 2)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "nonMasqueradeCIDRs", Msg: "nonMasqueradeCIDRs is set again on line 2, whose value is used (as by ip-masq-agent); keep only one"},
				{Source: Source{File: file, Line: 2}, Key: "nonmasqueradecidrs", Msg: "keys match without regard to case; write nonMasqueradeCIDRs"},
			},
		},
		{
			name: "duplicate key in JSON: the last wins",
			in:   `{"masqLinkLocal": true, "MasqLinkLocal": false}`,
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "masqLinkLocal", Msg: "masqLinkLocal is set again on line 1, whose value is used (as by ip-masq-agent); keep only one"},
				{Source: Source{File: file, Line: 1}, Key: "MasqLinkLocal", Msg: "keys match without regard to case; write masqLinkLocal"},
			},
		},
		{
			name: "a bad value fails even when a later spelling replaces it, as in encoding/json",
			in:   "NonMasqueradeCIDRs: 5\nnonMasqueradeCIDRs: [10.0.0.0/8]\n",
			err:  &wantErr{key: "NonMasqueradeCIDRs", line: 1, value: "5", msg: "must be a list of CIDRs, not a whole number"},
		},
		{
			name: "duplicate unknown key",
			in:   "foo: 1\nFoo: 2\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "foo", Msg: "unknown key, ignored"},
				{Source: Source{File: file, Line: 2}, Key: "Foo", Msg: "unknown key, ignored"},
			},
		},
		{
			name: "alias",
			in:   "masqueradeCIDRs: &x [10.96.0.0/12]\nnonMasqueradeCIDRs: *x\n",
			want: Config{NonMasqueradeCIDRs: []CIDR{at("10.96.0.0/12", 1)}, MasqueradeCIDRs: []CIDR{at("10.96.0.0/12", 1)}, CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
		},
		{
			name: "alias inside an unknown key",
			in:   "a: &a [1]\nb: [*a, *a]\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "a", Msg: "unknown key, ignored"},
				{Source: Source{File: file, Line: 2}, Key: "b", Msg: "unknown key, ignored"},
			},
		},
		{
			name: "alias without anchor",
			in:   "cidrLimit: 3\nmasqLinkLocal: *yes\n",
			err:  &wantErr{line: 2, value: "*yes", msg: "the alias *yes has no anchor &yes", fix: "define the anchor"},
		},
		{
			name: "merge key",
			in:   "base: &b {masqLinkLocal: true}\n<<: *b\ncidrLimit: 5\n",
			want: Config{NonMasqueradeCIDRs: rfc1918(), MasqLinkLocal: true, CIDRLimit: 5, ResyncInterval: 60 * time.Second, Files: []string{file}},
			warns: []Warning{
				{Source: Source{File: file, Line: 1}, Key: "base", Msg: "unknown key, ignored"},
			},
		},
		{
			name: "key that is a list",
			in:   "cidrLimit: 3\n? [a, b]\n: c\n",
			err:  &wantErr{line: 2, msg: "a key is a list or a mapping; keys must be strings"},
		},
		{
			name: "NUL byte",
			in:   "cidrLimit: 3\nmasq\x00LinkLocal: true\n",
			err:  &wantErr{line: 2, msg: "NUL byte at offset 17", fix: "UTF-8"},
		},
		{
			name: "UTF-16 file",
			in:   "\xff\xfec\x00i\x00",
			err:  &wantErr{line: 1, msg: "invalid UTF-8 at offset 0"},
		},
		{
			name: "invalid UTF-8",
			in:   "cidrLimit: 3\n# caf\xe9\n",
			err:  &wantErr{line: 2, msg: "invalid UTF-8 at offset 18", fix: "save the file as UTF-8"},
		},
		{
			name: "control character",
			in:   "cidrLimit: 3\n\nmasqLinkLocal: true\x1b\n",
			err:  &wantErr{line: 3, msg: "control character U+001B"},
		},
		{
			name: "syntax error: mapping in a value",
			in:   "cidrLimit: 3\nmasqLinkLocal: true\nresyncInterval: every: 60s\n",
			err:  &wantErr{line: 3, msg: "invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name: "syntax error on the first line",
			in:   "cidrLimit: 3: 4\n",
			err:  &wantErr{line: 1, msg: "invalid YAML: mapping values are not allowed"},
		},
		{
			name: "syntax error: list item after a key",
			in:   "cidrLimit: 3\n- 10.0.0.0/8\n",
			err:  &wantErr{line: 2, msg: "invalid YAML: did not find expected key"},
		},
		{
			name: "syntax error: unquoted IPv6 prefix starting with a colon in a flow list",
			in:   "cidrLimit: 3\nnonMasqueradeCIDRs: [::/0]\n",
			err:  &wantErr{line: 2, msg: "invalid YAML", fix: `quote a value that starts with ":"`},
		},
		{
			name: "syntax error: unterminated quote",
			in:   "cidrLimit: 3\nnonMasqueradeCIDRs: [\"10.0.0.0/8]\n",
			err:  &wantErr{line: 3, msg: "invalid YAML: found unexpected end of stream"},
		},
		{
			name: "syntax error: unclosed JSON, found at the end",
			in:   "{\"nonMasqueradeCIDRs\": [\"10.0.0.0/8\"]\n",
			err:  &wantErr{line: 1, msg: "invalid JSON: unexpected end of file", fix: `read as JSON`},
		},
		{
			name: "syntax error: tab indentation",
			in:   "nonMasqueradeCIDRs:\n\t- 10.0.0.0/8\n",
			err:  &wantErr{line: 2, msg: "invalid YAML", fix: "indent with spaces, not tabs"},
		},
		{
			name: "syntax error: tab indentation in a nested mapping",
			in:   "a:\n  b: 1\n\tc: 2\n",
			err:  &wantErr{line: 3, msg: "invalid YAML: found a tab character", fix: "indent with spaces, not tabs"},
		},
		{
			name: "nesting deeper than the decoder allows",
			in:   "cidrLimit: 3\nfoo: " + strings.Repeat("[", 10001) + "\n",
			err:  &wantErr{line: 0, msg: "invalid YAML: exceeded max depth", fix: "lists of strings need no anchors, aliases or nesting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns, err := Parse(file, []byte(tt.in), tt.opts)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if d := diff(tt.want, got); d != "" {
					t.Errorf("Parse config (-want +got):\n%s", d)
				}
				if d := diff(tt.warns, warns); d != "" {
					t.Errorf("Parse warnings (-want +got):\n%s", d)
				}
				return
			}
			checkError(t, err, tt.err)
			if d := diff(Config{}, got); d != "" {
				t.Errorf("Parse config on error is not zero (-want +got):\n%s", d)
			}
		})
	}
	if len(tests) < 60 {
		t.Errorf("only %d inputs; want at least 60", len(tests))
	}
}

// checkError checks that err is an *Error in file as want describes.
func checkError(t *testing.T, err error, want *wantErr) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error = %v (%T), want an *Error", err, err)
	}
	if e.Source.File != file || e.Source.Line != want.line || e.Key != want.key || e.Value != want.value {
		t.Errorf("error at %q line %d key %q value %q, want %q line %d key %q value %q",
			e.Source.File, e.Source.Line, e.Key, e.Value, file, want.line, want.key, want.value)
	}
	if !strings.Contains(e.Msg, want.msg) {
		t.Errorf("error Msg %q does not contain %q", e.Msg, want.msg)
	}
	if !strings.Contains(e.Fix, want.fix) {
		t.Errorf("error Fix %q does not contain %q", e.Fix, want.fix)
	}
}

func TestErrorString(t *testing.T) {
	_, _, err := Parse(file, []byte("nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 10.0.0.1/8\n"), Options{})
	const want = `/etc/config/ip-masq-agent line 3: nonMasqueradeCIDRs[1] "10.0.0.1/8": CIDR is not aligned to its prefix length; write 10.0.0.0/8`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestParseSyntaxErrorWrapsDecoderError(t *testing.T) {
	_, _, err := Parse(file, []byte("a: [1,\n"), Options{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse error = %v, want an *Error", err)
	}
	if e.Err == nil || !strings.Contains(e.Err.Error(), "did not find expected node content") {
		t.Errorf("Err = %v, want the YAML decoder's error", e.Err)
	}
}

func TestParseWithoutFileName(t *testing.T) {
	got, _, err := Parse("", []byte("nonMasqueradeCIDRs: [10.0.0.0/8]\n"), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{
		NonMasqueradeCIDRs: []CIDR{{Prefix: at("10.0.0.0/8", 0).Prefix, Source: Source{Line: 1}}},
		CIDRLimit:          64, ResyncInterval: 60 * time.Second,
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Parse (-want +got):\n%s", d)
	}
	_, _, err = Parse("", []byte("cidrLimit: -1\n"), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "config: cidrLimit") {
		t.Errorf("Parse error = %v, want it to start with %q", err, "config: cidrLimit")
	}
}

func TestParseAliasBomb(t *testing.T) {
	// A "billion laughs" document: expanded, it would hold 10^9 items. Upstream's decoder refuses it before
	// it expands it.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	var err error
	alloc := heapAllocated(func() { _, _, err = Parse(file, []byte(b.String()), Options{}) })
	checkError(t, err, &wantErr{msg: "invalid YAML: document contains excessive aliasing", fix: "write the values out in full"})
	if alloc > 64<<20 {
		t.Errorf("Parse of an alias bomb allocated %d MiB", alloc>>20)
	}
}
