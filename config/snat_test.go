package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseSNAT: egressInterfaces, snatTo and snatToInterface, validated and kept with their lines; bad
// values refused naming the key, the line and the fix.
func TestParseSNAT(t *testing.T) {
	src := func(line int) Source { return Source{File: file, Line: line} }
	tests := []struct {
		name   string
		in     string
		opts   Options
		egress []Interface
		snat   []Address
		iface  Interface
		warns  []string
		err    *wantErr
	}{
		{name: "left out", in: "masqLinkLocal: false\n"},
		{name: "egress", in: "egressInterfaces:\n  - up2\n  - eth0\n",
			egress: []Interface{{"eth0", src(3)}, {"up2", src(2)}}},
		{name: "egress flow", in: "egressInterfaces: [eth0, eth0]\n",
			egress: []Interface{{"eth0", src(1)}}, warns: []string{"listed already"}},
		{name: "egress empty", in: "egressInterfaces: []\n"},
		{name: "snatTo", in: "snatTo: [192.0.2.10]\n", snat: []Address{{netip.MustParseAddr("192.0.2.10"), src(1)}}},
		{name: "snatTo dual", in: "snatTo: ['2001:db8::10', 192.0.2.10]\n", opts: Options{EnableIPv6: true},
			snat: []Address{{netip.MustParseAddr("192.0.2.10"), src(1)}, {netip.MustParseAddr("2001:db8::10"), src(1)}}},
		{name: "snatToInterface", in: "snatToInterface: eth0\n", iface: Interface{"eth0", src(1)}},
		{name: "wildcard", in: "egressInterfaces: ['eth*']\n",
			err: &wantErr{key: "egressInterfaces[0]", line: 1, value: "eth*", msg: "wildcards are not supported", fix: "full name"}},
		{name: "too long", in: "egressInterfaces: [abcdefghijklmnop]\n",
			err: &wantErr{key: "egressInterfaces[0]", line: 1, value: "abcdefghijklmnop", msg: "longer than 15 bytes", fix: "ip link"}},
		{name: "slash", in: "egressInterfaces:\n  - eth/0\n",
			err: &wantErr{key: "egressInterfaces[0]", line: 2, value: "eth/0", msg: "not allowed", fix: "ip link"}},
		{name: "empty name", in: "egressInterfaces: ['']\n",
			err: &wantErr{key: "egressInterfaces[0]", line: 1, msg: "empty interface name", fix: "eth0"}},
		{name: "not a list", in: "egressInterfaces: eth0\n",
			err: &wantErr{key: "egressInterfaces", line: 1, value: "eth0", msg: "must be a list of interface names", fix: "egressInterfaces: [eth0]"}},
		{name: "prefix", in: "snatTo: [192.0.2.10/32]\n",
			err: &wantErr{key: "snatTo[0]", line: 1, value: "192.0.2.10/32", msg: "not an address", fix: "without a prefix length: 192.0.2.10"}},
		{name: "two IPv4", in: "snatTo:\n  - 192.0.2.10\n  - 192.0.2.11\n",
			err: &wantErr{key: "snatTo[1]", line: 3, value: "192.0.2.11", msg: "a second IPv4 address (line 2 has 192.0.2.10)", fix: "one address of each family"}},
		{name: "twice", in: "snatTo: [192.0.2.10, 192.0.2.10]\n",
			err: &wantErr{key: "snatTo[1]", line: 1, value: "192.0.2.10", msg: "listed twice", fix: "one address"}},
		{name: "IPv6 off", in: "snatTo: ['2001:db8::10']\n",
			err: &wantErr{key: "snatTo[0]", line: 1, value: "2001:db8::10", msg: "IPv6 is not enabled", fix: "--enable-ipv6"}},
		{name: "loopback", in: "snatTo: [127.0.0.1]\n",
			err: &wantErr{key: "snatTo[0]", line: 1, value: "127.0.0.1", msg: "not an address traffic can leave with", fix: "unicast"}},
		{name: "both", in: "snatTo: [192.0.2.10]\nsnatToInterface: eth0\n",
			err: &wantErr{key: "snatToInterface", line: 2, value: "eth0", msg: "set together with snatTo (line 1)", fix: "keep one of the two"}},
		{name: "interface not a string", in: "snatToInterface: [eth0]\n",
			err: &wantErr{key: "snatToInterface", line: 1, msg: "must be an interface name, not a list", fix: "snatToInterface: eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := Parse(file, []byte(tt.in), tt.opts)
			if tt.err != nil {
				checkError(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(tt.egress, cfg.EgressInterfaces); d != "" {
				t.Errorf("egressInterfaces (-want +got):\n%s", d)
			}
			if !slices.Equal(tt.snat, cfg.SNATTo) {
				t.Errorf("snatTo %+v, want %+v", cfg.SNATTo, tt.snat)
			}
			if cfg.SNATToInterface != tt.iface {
				t.Errorf("snatToInterface %+v, want %+v", cfg.SNATToInterface, tt.iface)
			}
			if len(warns) != len(tt.warns) {
				t.Fatalf("warnings %v, want %q", warns, tt.warns)
			}
			for i, w := range tt.warns {
				if !strings.Contains(warns[i].Msg, w) {
					t.Errorf("warning %v, want %q", warns[i], w)
				}
			}
		})
	}
}

// TestMergeSNAT: egressInterfaces merge as a union; snatTo and snatToInterface from two files must agree, and
// a disagreement names both files.
func TestMergeSNAT(t *testing.T) {
	read := func(name, in string) Config {
		t.Helper()
		c, _, err := Parse(name, []byte(in), Options{EnableIPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := read("a", "egressInterfaces: [up1]\nsnatTo: [192.0.2.10]\n")
	b := read("b", "egressInterfaces: [eth0, up1]\nsnatTo: ['2001:db8::10', 192.0.2.10]\n")
	if err := Conflicts(a, b); err != nil {
		t.Fatal(err)
	}
	m := Merge(a, b)
	if len(m.EgressInterfaces) != 2 || m.EgressInterfaces[0].Name != "eth0" || m.EgressInterfaces[1].Name != "up1" || m.EgressInterfaces[1].Source.File != "a" {
		t.Errorf("merged egressInterfaces %+v, want eth0 (b), up1 (a)", m.EgressInterfaces)
	}
	if v4, v6 := m.SNATAddrs(); v4.String() != "192.0.2.10" || v6.String() != "2001:db8::10" {
		t.Errorf("merged snatTo %v %v", v4, v6)
	}
	for _, tc := range []struct {
		x, y Config
		msg  string
	}{
		{a, read("c", "snatTo: [192.0.2.11]\n"), "a line 2 gives 192.0.2.10"},
		{read("d", "snatToInterface: eth0\n"), read("e", "snatToInterface: eth1\n"), "d line 1 gives eth0"},
		{read("f", "snatToInterface: eth0\n"), a, "a line 2 gives snatTo 192.0.2.10"},
	} {
		err := Conflicts(tc.x, tc.y)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("Conflicts = %v, want an *Error saying %q", err, tc.msg)
		}
	}
}

// TestLoadSNATConflict: a directory whose two files give different snatTo addresses is refused, naming both.
func TestLoadSNATConflict(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"ip-masq-agent": "snatTo: [192.0.2.10]\n", "ip-masq-platform": "snatTo: [192.0.2.11]\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := Load(dir, Options{})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "ip-masq-agent line 1 gives 192.0.2.10") ||
		!strings.Contains(err.Error(), "ip-masq-platform") || e.Key != "snatTo" {
		t.Errorf("Load = %v, want an *Error naming both files", err)
	}
}
