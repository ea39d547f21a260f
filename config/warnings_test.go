package config

import (
	"testing"
	"time"
)

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		key  string
		want string // the warning's Msg
	}{
		// Typos of known keys.
		{"nonMasqueradeCIDR", "unknown key, ignored; did you mean nonMasqueradeCIDRs?"},
		{"nonMasqueradeCIRDs", "unknown key, ignored; did you mean nonMasqueradeCIDRs?"},
		{"nonmasqueradeCIDRS_", "unknown key, ignored; did you mean nonMasqueradeCIDRs?"},
		{"non-masquerade-cidrs", "unknown key, ignored; did you mean nonMasqueradeCIDRs?"},
		{"masqueradeCIDR", "unknown key, ignored; did you mean masqueradeCIDRs?"},
		{"cidrlimt", "unknown key, ignored; did you mean cidrLimit?"},
		{"cidr_limit", "unknown key, ignored; did you mean cidrLimit?"},
		{"masq-link-local", "unknown key, ignored; did you mean masqLinkLocal?"},
		{"masqLinkLocalv6", "unknown key, ignored; did you mean masqLinkLocalIPv6?"},
		{"resyncIntervall", "unknown key, ignored; did you mean resyncInterval?"},
		{"enableIPv", "unknown key, ignored; did you mean enableIPv6?"},
		// Too far from any key to guess.
		{"foo", "unknown key, ignored"},
		{"interval", "unknown key, ignored"},
		{"cidrs", "unknown key, ignored"},
		{"x", "unknown key, ignored"},
		{`""`, "unknown key, ignored"},
		// Command-line flags written as keys.
		{"enable-ipv6", "--enable-ipv6 is a command-line flag, not a config key; ignored; in the file write enableIPv6: true, or pass --enable-ipv6"},
		{"--enable-ipv6", "--enable-ipv6 is a command-line flag, not a config key; ignored; in the file write enableIPv6: true, or pass --enable-ipv6"},
		{"enable_ipv6", "--enable-ipv6 is a command-line flag, not a config key; ignored; in the file write enableIPv6: true, or pass --enable-ipv6"},
		{"resync-interval", "--resync-interval is a command-line flag, not a config key; ignored; in the file write resyncInterval with a duration, e.g. resyncInterval: 60s"},
		{"masq-chain", "--masq-chain is a command-line flag, not a config key; ignored; pass it on the command line"},
		{"masqChain", "--masq-chain is a command-line flag, not a config key; ignored; pass it on the command line"},
		{"nomasq-all-reserved-ranges", "--nomasq-all-reserved-ranges is a command-line flag, not a config key; ignored; pass it on the command line, or list the ranges under nonMasqueradeCIDRs"},
		{"noMasqAllReservedRanges", "--nomasq-all-reserved-ranges is a command-line flag, not a config key; ignored; pass it on the command line, or list the ranges under nonMasqueradeCIDRs"},
		{"random-fully", "--random-fully is a command-line flag, not a config key; ignored; pass it on the command line"},
		{"to-ports", "--to-ports is a command-line flag, not a config key; ignored; pass it on the command line"},
		{"cluster-cidr", "--cluster-cidr is a command-line flag, not a config key; ignored; pass it on the command line, or list the pod ranges under clusterCIDRs"},
		{"clusterCIDR", "--cluster-cidr is a command-line flag, not a config key; ignored; pass it on the command line, or list the pod ranges under clusterCIDRs"},
		{"clusterCIRDs", "unknown key, ignored; did you mean clusterCIDRs?"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			in := "cidrLimit: 10\n" + tt.key + ": true\n"
			got, warns, err := Parse(file, []byte(in), Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			key := tt.key
			if key == `""` {
				key = ""
			}
			want := []Warning{{Source: Source{File: file, Line: 2}, Key: key, Msg: tt.want}}
			if d := diff(want, warns); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
			// The key is ignored: nothing but cidrLimit changes.
			wantCfg := Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 10, ResyncInterval: 60 * time.Second, Files: []string{file}}
			if d := diff(wantCfg, got); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestWarningString(t *testing.T) {
	_, warns, err := Parse(file, []byte("cidrLimit: 10\n\nmasqLinkLocl: true\n"), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	const want = "/etc/config/ip-masq-agent line 3: masqLinkLocl: unknown key, ignored; did you mean masqLinkLocal?"
	if len(warns) != 1 || warns[0].String() != want {
		t.Errorf("warnings = %q, want one: %s", warns, want)
	}
}
