package ruleset

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/masqd/masqd/config"
)

// TestMasqueradedWithin: which part of a node's pod range a config masquerades as a destination.
func TestMasqueradedWithin(t *testing.T) {
	v6 := config.Options{EnableIPv6: true}
	for _, tc := range []struct {
		name string
		text string
		opts config.Options
		pod  string
		want string // the masqueraded intervals, as fmt prints them; "[]" for none
	}{
		{"defaults keep 10/8", "", config.Options{}, "10.244.1.0/24", "[]"},
		{"forgotten range", "nonMasqueradeCIDRs: [10.0.0.0/16]\n", config.Options{}, "10.244.1.0/24", "[10.244.1.0/24]"},
		{"listed exactly", "nonMasqueradeCIDRs: [10.244.1.0/24]\n", config.Options{}, "10.244.1.0/24", "[]"},
		{"inside a larger one", "nonMasqueradeCIDRs: [10.244.0.0/16]\n", config.Options{}, "10.244.1.0/24", "[]"},
		{"half listed", "nonMasqueradeCIDRs: [10.244.1.0/25]\n", config.Options{}, "10.244.1.0/24", "[10.244.1.128/25]"},
		{"two halves listed", "nonMasqueradeCIDRs: [10.244.1.0/25, 10.244.1.128/25]\n", config.Options{}, "10.244.1.0/24", "[]"},
		{"clusterCIDRs key", "nonMasqueradeCIDRs: [192.0.2.0/24]\nclusterCIDRs: [10.244.0.0/16]\n", config.Options{}, "10.244.1.0/24", "[]"},
		{"--cluster-cidr", "nonMasqueradeCIDRs: [192.0.2.0/24]\n", config.Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, "10.244.1.0/24", "[]"},
		{"a masqueradeCIDRs hole", "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.244.1.7/32]\n", config.Options{}, "10.244.1.0/24", "[10.244.1.7]"},
		{"masked first", "nonMasqueradeCIDRs: [10.0.0.0/16]\n", config.Options{}, "10.244.1.9/24", "[10.244.1.0/24]"},
		{"IPv6 without --enable-ipv6", "nonMasqueradeCIDRs: [10.0.0.0/8]\n", config.Options{}, "2001:db8:1::/64", "[]"},
		{"IPv6 forgotten", "nonMasqueradeCIDRs: [10.0.0.0/8]\n", v6, "2001:db8:1::/64", "[2001:db8:1::/64]"},
		{"IPv6 listed", "nonMasqueradeCIDRs: [2001:db8::/32]\n", v6, "2001:db8:1::/64", "[]"},
		{"IPv4-mapped", "nonMasqueradeCIDRs: [10.0.0.0/16]\n", config.Options{}, "::ffff:10.244.1.0/120", "[10.244.1.0/24]"},
		{"sources of the other family only", "nonMasqueradeCIDRs: [10.0.0.0/16]\nmasqueradeSourceCIDRs: [2001:db8::/32]\n", v6, "10.244.1.0/24", "[]"},
		{"sources of its family", "nonMasqueradeCIDRs: [10.0.0.0/16]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n", config.Options{}, "10.244.1.0/24", "[10.244.1.0/24]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compile(parseConfig(t, tc.text, tc.opts), Options{})
			if got := fmt.Sprint(r.MasqueradedWithin(netip.MustParsePrefix(tc.pod))); got != tc.want {
				t.Errorf("MasqueradedWithin(%s) = %s, want %s", tc.pod, got, tc.want)
			}
		})
	}
	if got := (Ruleset{}).MasqueradedWithin(netip.Prefix{}); got != nil {
		t.Errorf("invalid prefix: %v, want nil", got)
	}
}

func TestMasqueradedPodCIDRs(t *testing.T) {
	r := Compile(parseConfig(t, "nonMasqueradeCIDRs: [10.244.0.0/24, 2001:db8:1::/64]\n", config.Options{EnableIPv6: true}), Options{})
	pods := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.0.0/24"),
		netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2001:db8:2::/64")}
	if got, want := fmt.Sprint(r.MasqueradedPodCIDRs(pods)), "[10.244.1.0/24 2001:db8:2::/64]"; got != want {
		t.Errorf("MasqueradedPodCIDRs = %s, want %s", got, want)
	}
	if got := r.MasqueradedPodCIDRs(pods[1:3]); got != nil {
		t.Errorf("all kept: %v, want nil", got)
	}
}
