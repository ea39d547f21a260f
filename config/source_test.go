package config

import (
	"strings"
	"testing"
	"time"
)

// TestParseMasqueradeSourceCIDRs: the sources masquerading is restricted to, validated like the other lists;
// a dual-stack config listing one family only is warned about.
func TestParseMasqueradeSourceCIDRs(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  Options
		want  []CIDR
		warns []string // Msg substrings, in order
		err   *wantErr
	}{
		{name: "left out", in: "masqLinkLocal: false\n"},
		{name: "empty", in: "masqueradeSourceCIDRs: []\n"},
		{name: "listed", in: "masqueradeSourceCIDRs:\n  - 10.244.0.0/16\n  - 10.245.0.0/16\n",
			want: []CIDR{at("10.244.0.0/16", 2), at("10.245.0.0/16", 3)}},
		{name: "dual-stack", in: "masqueradeSourceCIDRs: [10.244.0.0/16, fd00:10:244::/56]\n", opts: Options{EnableIPv6: true},
			want: []CIDR{at("10.244.0.0/16", 1), at("fd00:10:244::/56", 1)}},
		{name: "IPv4 only with IPv6 on", in: "masqueradeSourceCIDRs: [10.244.0.0/16]\n", opts: Options{EnableIPv6: true},
			want: []CIDR{at("10.244.0.0/16", 1)}, warns: []string{"no IPv6 prefix: IPv6 traffic is masqueraded from no source"}},
		{name: "IPv6 only", in: "enableIPv6: true\nmasqueradeSourceCIDRs: [fd00:10:244::/56]\n",
			want: []CIDR{at("fd00:10:244::/56", 2)}, warns: []string{"no IPv4 prefix"}},
		{name: "misaligned", in: "masqueradeSourceCIDRs:\n  - 10.244.0.1/16\n",
			err: &wantErr{key: "masqueradeSourceCIDRs[0]", line: 2, value: "10.244.0.1/16", msg: "not aligned", fix: "write 10.244.0.0/16"}},
		{name: "IPv6 without IPv6", in: "masqueradeSourceCIDRs: [fd00::/8]\n",
			err: &wantErr{key: "masqueradeSourceCIDRs[0]", line: 1, value: "fd00::/8", msg: "IPv6 is not enabled", fix: "--enable-ipv6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, fast := range []bool{true, false} {
				cfg, warns, err := parse(file, tt.in, tt.opts, fast)
				if tt.err != nil {
					checkError(t, err, tt.err)
					continue
				}
				if err != nil {
					t.Fatalf("fast=%v: %v", fast, err)
				}
				if d := diff(tt.want, cfg.MasqueradeSourceCIDRs); d != "" {
					t.Errorf("fast=%v: (-want +got):\n%s", fast, d)
				}
				if len(warns) != len(tt.warns) {
					t.Fatalf("fast=%v: warnings %v, want %q", fast, warns, tt.warns)
				}
				for i, w := range tt.warns {
					if !strings.Contains(warns[i].Msg, w) || warns[i].Key != "masqueradeSourceCIDRs" {
						t.Errorf("fast=%v: warning %v, want %q", fast, warns[i], w)
					}
				}
				if cfg.CIDRLimit != DefaultCIDRLimit || cfg.ResyncInterval != time.Minute {
					t.Errorf("fast=%v: other keys changed: %+v", fast, cfg)
				}
			}
		})
	}
}
