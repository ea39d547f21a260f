package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/ruleset"
)

// TestBackendFlags: --mode, --to-ports, --migrate-from-chain and --masq-chain as parsed.
func TestBackendFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		mode        string
		toPorts     []ruleset.PortRange
		migrateFrom []string
		masqChain   string
	}{
		{nil, "auto", nil, []string{"IP-MASQ-AGENT", "IP-MASQ"}, "IP-MASQ-AGENT"},
		{[]string{"--mode=nftables"}, "nftables", nil, []string{"IP-MASQ-AGENT", "IP-MASQ"}, "IP-MASQ-AGENT"},
		{[]string{"--mode=iptables", "--to-ports=1024-29999,32768-65535", "--masq-chain=IP-MASQ"}, "iptables",
			[]ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}, []string{"IP-MASQ-AGENT", "IP-MASQ"}, "IP-MASQ"},
		{[]string{"--to-ports=5000"}, "auto", []ruleset.PortRange{{First: 5000, Last: 5000}}, []string{"IP-MASQ-AGENT", "IP-MASQ"}, "IP-MASQ-AGENT"},
		{[]string{"--migrate-from-chain="}, "auto", nil, nil, "IP-MASQ-AGENT"},
		{[]string{"--migrate-from-chain= OLD-MASQ, IP-MASQ,OLD-MASQ"}, "auto", nil, []string{"OLD-MASQ", "IP-MASQ"}, "IP-MASQ-AGENT"},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if o.mode != tc.mode || !reflect.DeepEqual(o.nft.ToPorts, tc.toPorts) || !reflect.DeepEqual(o.migrateFrom, tc.migrateFrom) || o.masqChain != tc.masqChain {
			t.Errorf("%q: mode %q, to-ports %v, migrate-from %q, masq-chain %q; want %q, %v, %q, %q",
				tc.args, o.mode, o.nft.ToPorts, o.migrateFrom, o.masqChain, tc.mode, tc.toPorts, tc.migrateFrom, tc.masqChain)
		}
	}
}

// TestBackendFlagErrors: each bad value exits 2 with an error that names the flag and says what to write.
func TestBackendFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--mode=ipfw"}, []string{`--mode="ipfw"`, "auto, nftables or iptables"}},
		{[]string{"--to-ports=0-5"}, []string{`"0-5"`, "-to-ports", "1-65535", "1024-29999,32768-65535"}},
		{[]string{"--to-ports=2000-1000"}, []string{"--to-ports", "write 1000-2000"}},
		{[]string{"--to-ports=1000-2000,1500-2500"}, []string{"--to-ports", "overlaps"}},
		{[]string{"--masq-chain=RETURN"}, []string{"--masq-chain", "built-in"}},
		{[]string{"--masq-chain=THIS-CHAIN-NAME-IS-FAR-TOO-LONG"}, []string{"--masq-chain", "iptables allows 28"}},
		{[]string{"--migrate-from-chain=IP-MASQ,OLD MASQ"}, []string{"--migrate-from-chain", `"OLD MASQ"`, "--migrate-from-chain= for none"}},
	} {
		code, out, errOut := runArgs(t, append(tc.args, "--dry-run")...)
		if code != 2 || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr %q does not say %q", tc.args, errOut, w)
			}
		}
	}
}

// TestDryRunIPTables: --dry-run --mode=iptables prints ip-masq-agent's iptables-restore input, each family
// introduced by comment lines; it runs no iptables command, so it works anywhere.
func TestDryRunIPTables(t *testing.T) {
	absent := "--config=" + filepath.Join(t.TempDir(), "absent")
	code, out, errOut := runArgs(t, absent, "--dry-run", "--mode=iptables", "--masq-chain=IP-MASQ")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `# IPv4: iptables-restore --noflush -w 5 input for chain IP-MASQ in table nat
# IPv4: jump ensured in POSTROUTING: -A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ
*nat
:IP-MASQ - [0:0]
-A IP-MASQ -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d 169.254.0.0/16 -j RETURN
-A IP-MASQ -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d 10.0.0.0/8 -j RETURN
-A IP-MASQ -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d 172.16.0.0/12 -j RETURN
-A IP-MASQ -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d 192.168.0.0/16 -j RETURN
-A IP-MASQ -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully
COMMIT
`
	if out != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out, want)
	}

	code, out, errOut = runArgs(t, absent, "--dry-run", "--mode=iptables", "--enable-ipv6", "--random-fully=false", "--to-ports=1024-65535")
	for _, w := range []string{
		"# IPv6: ip6tables-restore --noflush -w 5 input for chain IP-MASQ-AGENT in table nat\n",
		`-d fe80::/10 -j RETURN` + "\n",
		`-p tcp -j MASQUERADE --to-ports 1024-65535` + "\n",
	} {
		if code != 0 || !strings.Contains(out, w) || strings.Contains(out, "random-fully") {
			t.Errorf("--enable-ipv6 --random-fully=false --to-ports: exit %d, stderr %q; stdout lacks %q or has --random-fully:\n%s", code, errOut, w, out)
		}
	}

	// auto shows the nftables table, with the port rules in front of each family's catch-all rule.
	code, out, errOut = runArgs(t, absent, "--dry-run", "--to-ports=1024-29999,32768-65535")
	for _, w := range []string{
		"ip daddr != @nonmasq4 fib daddr type != local meta l4proto udp numgen random mod 61744 < 28976 counter packets 0 bytes 0 masquerade to :1024-29999 random,fully-random\n",
		"ip daddr != @nonmasq4 fib daddr type != local meta l4proto sctp counter packets 0 bytes 0 masquerade to :32768-65535 random,fully-random\n",
	} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("--dry-run --to-ports with auto: exit %d, stderr %q; stdout lacks %q:\n%s", code, errOut, w, out)
		}
	}
}

// TestChooseBackendWiring: --mode with the node's facts, and what the errors say.
func TestChooseBackendWiring(t *testing.T) {
	notSupported := fmt.Errorf("nftables probe: kernel rejected masqd's table: %w: %w", ruleset.ErrNotSupported, unix.EOPNOTSUPP)
	denied := fmt.Errorf("nftables probe: kernel rejected masqd's table: %w", unix.EPERM)
	usable := iptables.VariantFacts{Usable: true}
	for _, tc := range []struct {
		name    string
		mode    string
		facts   iptables.Facts
		gather  error
		want    string   // the backend's name
		wantErr []string // substrings of the error
	}{
		{name: "auto, nftables works", mode: "auto", facts: iptables.Facts{NFT: usable, Legacy: usable}, want: "nftables"},
		{name: "auto, no nftables NAT", mode: "auto", facts: iptables.Facts{NFTables: notSupported, NFT: usable, Legacy: usable}, want: "iptables-nft"},
		{name: "iptables, legacy busier", mode: "iptables", facts: iptables.Facts{NFT: usable, Legacy: iptables.VariantFacts{Usable: true, Counts: iptables.RuleCounts{Rules: 3}}}, want: "iptables-legacy"},
		{name: "auto, not permitted", mode: "auto", facts: iptables.Facts{NFTables: denied}, wantErr: []string{"not permitted", "CAP_NET_ADMIN"}},
		{name: "iptables, not permitted", mode: "iptables", facts: iptables.Facts{NFTables: denied}, wantErr: []string{"--mode=iptables", "not permitted", "CAP_NET_ADMIN"}},
		{name: "nftables, not supported", mode: "nftables", facts: iptables.Facts{NFTables: notSupported, NFT: usable}, wantErr: []string{"--mode=nftables", "not supported"}},
		{name: "facts unreadable", mode: "auto", gather: errors.New("gather facts: open network namespace: no such file"), wantErr: []string{"gather facts"}},
	} {
		b, _, err := chooseBackend(tc.mode, func() (iptables.Facts, error) { return tc.facts, tc.gather })
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == nil && b.String() != tc.want:
			t.Errorf("%s: backend %s, want %s", tc.name, b, tc.want)
		case tc.wantErr != nil && err == nil:
			t.Errorf("%s: backend %s, want an error", tc.name, b)
		}
		for _, w := range tc.wantErr {
			if err != nil && !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
}
