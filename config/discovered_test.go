package config

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestWithNodePodCIDRs(t *testing.T) {
	pfx := netip.MustParsePrefix
	cfg, _, err := Parse("f", []byte("nonMasqueradeCIDRs: [10.0.0.0/8]\nclusterCIDRs: [100.96.1.0/24]\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	pods := []NodePodCIDR{
		{"n3", pfx("100.96.3.0/24")},
		{"n1", pfx("100.96.1.0/24")}, // the key has it: its source stays the file's line
		{"n2", pfx("100.96.2.0/24")},
		{"n2b", pfx("100.96.2.0/24")},  // shared: once, sourced to n2
		{"n2", pfx("2001:db8:2::/64")}, // IPv6 is off
	}
	got := WithNodePodCIDRs(cfg, pods)
	var s []string
	for _, c := range got.ClusterCIDRs {
		s = append(s, fmt.Sprintf("%s from %s", c.Prefix, c.Source))
	}
	want := "[100.96.1.0/24 from f line 2 100.96.2.0/24 from node n2 (--discover-pod-cidrs) 100.96.3.0/24 from node n3 (--discover-pod-cidrs)]"
	if fmt.Sprint(s) != want {
		t.Errorf("ClusterCIDRs:\n%v\nwant\n%v", s, want)
	}
	if len(cfg.ClusterCIDRs) != 1 {
		t.Errorf("cfg modified: %v", cfg.ClusterCIDRs)
	}
	// The same Nodes in another order give an equal Config.
	rev := []NodePodCIDR{pods[4], pods[3], pods[2], pods[1], pods[0]}
	if !WithNodePodCIDRs(cfg, rev).Equal(got) {
		t.Error("another order gives another Config")
	}
	cfg.EnableIPv6 = true
	if n := len(WithNodePodCIDRs(cfg, pods).ClusterCIDRs); n != 4 {
		t.Errorf("with IPv6: %d ClusterCIDRs, want 4", n)
	}
	if got := WithNodePodCIDRs(cfg, nil); !got.Equal(cfg) {
		t.Error("no pods changed the Config")
	}
}
