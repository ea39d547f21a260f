package config

import (
	"net/netip"
	"testing"
	"time"
)

// cidrIn is a CIDR written on line of name.
func cidrIn(name, prefix string, line int) CIDR {
	return CIDR{Prefix: netip.MustParsePrefix(prefix), Source: Source{File: name, Line: line}}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		in   []Config
		want Config
	}{
		{
			name: "nothing",
			want: Config{},
		},
		{
			name: "one config is itself",
			in: []Config{{
				NonMasqueradeCIDRs: []CIDR{cidrIn("a", "10.0.0.0/8", 2), cidrIn("a", "10.0.0.0/8", 3)},
				CIDRLimit:          64, ResyncInterval: time.Minute, Files: []string{"a"},
			}},
			want: Config{
				NonMasqueradeCIDRs: []CIDR{cidrIn("a", "10.0.0.0/8", 2)},
				CIDRLimit:          64, ResyncInterval: time.Minute, Files: []string{"a"},
			},
		},
		{
			name: "user and platform",
			in: []Config{
				{
					NonMasqueradeCIDRs: []CIDR{cidrIn("user", "10.0.0.0/8", 2), cidrIn("user", "fd00::/8", 3)},
					MasqueradeCIDRs:    []CIDR{cidrIn("user", "10.96.0.0/12", 5)},
					CIDRLimit:          10, MasqLinkLocalIPv6: true, ResyncInterval: 2 * time.Minute, EnableIPv6: true,
					Files: []string{"user"},
				},
				{
					NonMasqueradeCIDRs: []CIDR{cidrIn("platform", "fd00::/8", 2), cidrIn("platform", "100.64.0.0/10", 3)},
					MasqueradeCIDRs:    []CIDR{cidrIn("platform", "10.96.0.0/12", 6), cidrIn("platform", "10.0.1.0/24", 7)},
					CIDRLimit:          64, MasqLinkLocal: true, ResyncInterval: 30 * time.Second,
					Files: []string{"platform"},
				},
			},
			want: Config{
				NonMasqueradeCIDRs: []CIDR{cidrIn("user", "10.0.0.0/8", 2), cidrIn("user", "fd00::/8", 3), cidrIn("platform", "100.64.0.0/10", 3)},
				MasqueradeCIDRs:    []CIDR{cidrIn("user", "10.96.0.0/12", 5), cidrIn("platform", "10.0.1.0/24", 7)},
				CIDRLimit:          64, MasqLinkLocal: true, MasqLinkLocalIPv6: true, ResyncInterval: 30 * time.Second,
				EnableIPv6: true, Files: []string{"user", "platform"},
			},
		},
		{
			name: "overlapping prefixes are kept: only exact duplicates are dropped",
			in: []Config{
				{NonMasqueradeCIDRs: []CIDR{cidrIn("a", "10.0.0.0/8", 1)}, Files: []string{"a"}},
				{NonMasqueradeCIDRs: []CIDR{cidrIn("b", "10.0.0.0/16", 1)}, Files: []string{"b"}},
			},
			want: Config{
				NonMasqueradeCIDRs: []CIDR{cidrIn("a", "10.0.0.0/8", 1), cidrIn("b", "10.0.0.0/16", 1)},
				Files:              []string{"a", "b"},
			},
		},
		{
			name: "zero ResyncInterval is ignored",
			in:   []Config{{ResyncInterval: 0}, {ResyncInterval: 5 * time.Second}, {}},
			want: Config{ResyncInterval: 5 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := diff(tt.want, Merge(tt.in...)); d != "" {
				t.Errorf("Merge (-want +got):\n%s", d)
			}
		})
	}
}

// TestMergeKeepsDefaults shows the documented meaning: a file that leaves nonMasqueradeCIDRs out means the
// defaults, so they are in the union.
func TestMergeKeepsDefaults(t *testing.T) {
	user, _, err := Parse("user", []byte("nonMasqueradeCIDRs: [100.64.0.0/10]\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	platform, _, err := Parse("platform", []byte("masqLinkLocal: true\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NonMasqueradeCIDRs: []CIDR{cidrIn("user", "100.64.0.0/10", 1), builtin("10.0.0.0/8"), builtin("172.16.0.0/12"), builtin("192.168.0.0/16")},
		CIDRLimit:          64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{"user", "platform"},
	}
	if d := diff(want, Merge(user, platform)); d != "" {
		t.Errorf("Merge (-want +got):\n%s", d)
	}
}

func TestMergeDoesNotAlias(t *testing.T) {
	a := Config{NonMasqueradeCIDRs: make([]CIDR, 1, 4), Files: make([]string, 1, 4)}
	a.NonMasqueradeCIDRs[0] = cidrIn("a", "10.0.0.0/8", 1)
	a.Files[0] = "a"
	b := Config{NonMasqueradeCIDRs: []CIDR{cidrIn("b", "172.16.0.0/12", 1)}, Files: []string{"b"}}

	got := Merge(a, b)
	got.NonMasqueradeCIDRs[0] = cidrIn("x", "192.168.0.0/16", 9)
	got.Files[0] = "x"

	wantA := Config{NonMasqueradeCIDRs: []CIDR{cidrIn("a", "10.0.0.0/8", 1)}, Files: []string{"a"}}
	if d := diff(wantA, a); d != "" {
		t.Errorf("Merge changed its input (-want +got):\n%s", d)
	}
	if spare := a.NonMasqueradeCIDRs[:2][1]; spare != (CIDR{}) {
		t.Errorf("Merge wrote %v into the spare capacity of its input", spare)
	}
}
