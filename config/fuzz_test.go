package config

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(""), false, false)
	f.Add([]byte("nonMasqueradeCIDRS:\n  - 172.16.0.0/12\n  - 10.1.1.0/24\nmasqLinkLocal : false\nresyncInterval : 60s\n"), false, false)
	f.Add([]byte("nonMasqueradeCIDRs:\n  - 10.0.0.0/16\n  - 172.18.0.0/16\n  - 192.168.0.0/17\nmasqLinkLocal: true\n"), false, true)
	f.Add([]byte(`{"nonMasqueradeCIDRs": ["fd00::/8", "10.0.0.0/8"], "enableIPv6": true, "cidrLimit": 2}`), false, false)
	f.Add([]byte("masqueradeCIDRs: [\"::ffff:10.0.0.0/104\"]\ncidrLimit: 0\n"), true, false)
	f.Add([]byte("a: &a [1]\nb: *a\n---\nc: d\n"), false, false)
	f.Add([]byte("nonMasqueradeCIDRs:\n  -\n  - ~\n  - 10\nresyncInterval: -1s\nmasqLinkLocal: yes\n"), true, true)
	f.Add([]byte("Nonmasqueradecidrs: []\nnonMasqueradeCIDRs: []\nenable-ipv6: true\n"), false, false)

	f.Fuzz(func(t *testing.T, data []byte, ipv6, allReserved bool) {
		opts := Options{EnableIPv6: ipv6, NoMasqAllReservedRanges: allReserved}
		cfg, _, err := Parse("fuzz", data, opts)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, want *Error", err, err)
			}
			if e.Msg == "" {
				t.Fatalf("error %#v has no Msg", e)
			}
			return
		}
		if len(cfg.NonMasqueradeCIDRs) > cfg.CIDRLimit {
			t.Errorf("%d nonMasqueradeCIDRs, more than cidrLimit %d", len(cfg.NonMasqueradeCIDRs), cfg.CIDRLimit)
		}
		if cfg.ResyncInterval <= 0 {
			t.Errorf("resyncInterval %v is not positive", cfg.ResyncInterval)
		}
		if ipv6 && !cfg.EnableIPv6 {
			t.Errorf("enableIPv6 turned --enable-ipv6 off")
		}
		for _, list := range [][]CIDR{cfg.NonMasqueradeCIDRs, cfg.MasqueradeCIDRs} {
			for _, c := range list {
				p := c.Prefix
				switch {
				case !p.IsValid():
					t.Errorf("prefix %v is not valid", p)
				case p.Masked() != p:
					t.Errorf("prefix %v is not masked", p)
				case p.Addr().Is4In6():
					t.Errorf("prefix %v is IPv4-mapped IPv6", p)
				case p.Addr().Is6() && !cfg.EnableIPv6:
					t.Errorf("IPv6 prefix %v without IPv6 enabled", p)
				}
			}
		}
	})
}
