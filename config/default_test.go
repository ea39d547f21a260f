package config

import (
	"net/netip"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want Config
	}{
		{
			name: "RFC 1918",
			want: Config{
				NonMasqueradeCIDRs: []CIDR{builtin("10.0.0.0/8"), builtin("172.16.0.0/12"), builtin("192.168.0.0/16")},
				CIDRLimit:          64, ResyncInterval: 60 * time.Second,
			},
		},
		{
			name: "all reserved ranges",
			opts: Options{NoMasqAllReservedRanges: true},
			want: Config{
				NonMasqueradeCIDRs: []CIDR{
					builtin("10.0.0.0/8"), builtin("172.16.0.0/12"), builtin("192.168.0.0/16"),
					builtin("100.64.0.0/10"), builtin("192.0.0.0/24"), builtin("192.0.2.0/24"), builtin("192.88.99.0/24"),
					builtin("198.18.0.0/15"), builtin("198.51.100.0/24"), builtin("203.0.113.0/24"), builtin("240.0.0.0/4"),
				},
				CIDRLimit: 64, ResyncInterval: 60 * time.Second,
			},
		},
		{
			name: "IPv6 adds no range",
			opts: Options{EnableIPv6: true},
			want: Config{
				NonMasqueradeCIDRs: []CIDR{builtin("10.0.0.0/8"), builtin("172.16.0.0/12"), builtin("192.168.0.0/16")},
				CIDRLimit:          64, ResyncInterval: 60 * time.Second, EnableIPv6: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := diff(tt.want, Default(tt.opts)); d != "" {
				t.Errorf("Default (-want +got):\n%s", d)
			}
		})
	}
}

func TestDefaultReturnsFreshSlices(t *testing.T) {
	a := Default(Options{})
	a.NonMasqueradeCIDRs[0].Prefix = netip.MustParsePrefix("1.0.0.0/8")
	b := Default(Options{})
	if got, want := b.NonMasqueradeCIDRs[0].Prefix, netip.MustParsePrefix("10.0.0.0/8"); got != want {
		t.Errorf("after changing one Default, the next starts with %v, want %v", got, want)
	}
}
