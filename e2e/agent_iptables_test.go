//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/iptables"
)

// iptablesChainLines are the lines of chain in `iptables-VARIANT-save -t nat` (or ip6tables with six),
// jumps to it from POSTROUTING included.
func iptablesChainLines(t *testing.T, ns *NS, variant, chain string, six bool) []string {
	t.Helper()
	bin := "iptables-" + variant + "-save"
	if six {
		bin = "ip6" + bin
	}
	var out []string
	for line := range strings.Lines(ns.Run(t, bin, "-t", "nat")) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "-A "+chain+" ") || strings.HasSuffix(line, "-j "+chain) {
			out = append(out, line)
		}
	}
	return out
}

// wantChainLines is what iptablesChainLines shows for cfg applied by masqd with --random-fully.
func wantChainLines(cfg config.Config, six bool) []string {
	r := iptables.CompileIPTables(cfg, iptables.IPTablesOptions{RandomFully: true, RandomFullySupported: true})
	f := iptables.IPv4
	if six {
		f = iptables.IPv6
	}
	return append([]string{r.JumpSaveLine()}, r.SaveLines(f)...)
}

// waitChain waits until the node's chain in variant is exactly want.
func waitChain(t *testing.T, ns *NS, variant string, want []string, what string) {
	t.Helper()
	waitFor(t, 10*time.Second, what, func() error {
		if got := iptablesChainLines(t, ns, variant, iptables.DefaultIPTablesChain, false); strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("iptables-%s-save shows:\n%s\nwant:\n%s", variant, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})
}

// TestAgentIPTablesMode runs the agent with --mode=iptables in a lab that holds masqd's nftables table from
// an earlier run, once for each iptables variant: iptables-nft (what an unused node gets) and
// iptables-legacy (chosen because a bystander rule makes it the busier one). The agent takes over with
// ip-masq-agent's chain, removes the stale nftables table once its chain is verified, follows a config edit,
// repairs a flushed chain (iptables-nft: seen in the nftables monitor; iptables-legacy, which sends no
// notification: at the next resync, 1s), and exports its backend. `--once --mode=nftables` then switches
// back, leaving no chain in iptables, and --cleanup leaves neither backend's state.
func TestAgentIPTablesMode(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	const (
		cfgBefore = "nonMasqueradeCIDRs: [10.0.0.0/8]\nresyncInterval: 1s\n"
		cfgAfter  = "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\nresyncInterval: 1s\n"
	)
	for _, tc := range []struct{ variant, other string }{{iptables.VariantNFT, iptables.VariantLegacy}, {iptables.VariantLegacy, iptables.VariantNFT}} {
		t.Run(tc.variant, func(t *testing.T) {
			lab := newLab(t, labOptions{})
			if tc.variant == iptables.VariantLegacy {
				lab.Node.Run(t, "iptables-legacy", "-w", "5", "-t", "nat", "-A", "POSTROUTING", "-d", "192.0.2.99/32", "-j", "RETURN")
			}
			path := writeConfig(t, cfgBefore)
			mustMasqd(t, lab.Node, "--config="+path, "--once", "--mode=nftables") // the nftables backend's state
			kernelTable(t, lab.Node)

			a := startAgent(t, lab.Node, 9745, "--config="+path, "--mode=iptables")
			a.waitStatus("/readyz", http.StatusOK)
			waitChain(t, lab.Node, tc.variant, wantChainLines(parseConfig(t, cfgBefore, config.Options{}), false), "masqd's chain")
			if got := a.labels("masqd_build_info")["backend"]; got != "iptables-"+tc.variant {
				t.Errorf("masqd_build_info{backend=%q}, want iptables-%s", got, tc.variant)
			}
			waitFor(t, 10*time.Second, "the stale nftables table removed", func() error {
				if out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd"); err == nil {
					return fmt.Errorf("table inet masqd still there:\n%s", out)
				}
				return nil
			})
			if got := iptablesChainLines(t, lab.Node, tc.other, iptables.DefaultIPTablesChain, false); len(got) != 0 {
				t.Errorf("iptables-%s holds %q, want nothing: masqd never mixes the variants", tc.other, got)
			}
			checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}, {lab.Metadata, lab.PodIP}, {lab.NodeLocal, lab.PodIP}})

			// A config edit: the internet range now keeps the pod address.
			mustWrite(t, path, cfgAfter)
			waitChain(t, lab.Node, tc.variant, wantChainLines(parseConfig(t, cfgAfter, config.Options{}), false), "the edit applied")
			checkSources(t, lab, []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})
			mustWrite(t, path, cfgBefore)
			want := wantChainLines(parseConfig(t, cfgBefore, config.Options{}), false)
			waitChain(t, lab.Node, tc.variant, want, "the edit back applied")

			// Drift: flushing the chain lets traffic out with the pod address until masqd puts it back.
			repairs := a.metric("masqd_drift_repairs_total")
			lab.Node.Run(t, "iptables-"+tc.variant, "-w", "5", "-t", "nat", "-F", iptables.DefaultIPTablesChain)
			waitChain(t, lab.Node, tc.variant, want, "the flushed chain repaired")
			checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
			// The chain is back before the apply returns and counts the repair.
			waitFor(t, 5*time.Second, "the repair counted", func() error {
				if got := a.metric("masqd_drift_repairs_total"); got != repairs+1 {
					return fmt.Errorf("masqd_drift_repairs_total = %v after the flush, want %v", got, repairs+1)
				}
				return nil
			})
			if got := a.metric(`masqd_masqueraded_packets_total{family="ipv4"}`); got < 1 {
				t.Errorf("masqd_masqueraded_packets_total{family=\"ipv4\"} = %v, want the chain's MASQUERADE counters (≥ 1)", got)
			}
			a.stop(syscall.SIGTERM)
			if got := iptablesChainLines(t, lab.Node, tc.variant, iptables.DefaultIPTablesChain, false); len(got) == 0 {
				t.Errorf("the chain went with the agent; it must stay in the kernel")
			}

			// Back to nftables: masqd's own chain goes from iptables once the table is verified.
			mustMasqd(t, lab.Node, "--config="+path, "--once", "--mode=nftables")
			kernelTable(t, lab.Node)
			noAgentChains(t, lab.Node)
			checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})

			// And --cleanup removes both: the table, and a chain put back in each variant.
			mustMasqd(t, lab.Node, "--config="+path, "--once", "--mode=iptables")
			installOldAgent(t, lab, tc.other)
			mustMasqd(t, lab.Node, "--cleanup")
			noAgentChains(t, lab.Node)
			if out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd"); err == nil {
				t.Errorf("table inet masqd after --cleanup:\n%s", out)
			}
			if tables := nftRuleTables(t, lab.Node); len(tables) != 0 {
				t.Errorf("nftables rules after --cleanup: %v, want none", tables)
			}
			checkSources(t, lab, []expect{{lab.Internet, lab.PodIP}})
			mustMasqd(t, lab.Node, "--cleanup") // nothing left is not an error
		})
	}
}

// TestAgentMigrationUnderTraffic is TestMigrationUnderTraffic with the real agent: the node runs
// ip-masq-agent's chains (IPv4 and IPv6, in iptables-legacy or iptables-nft), the pod keeps opening flows to
// the internet, and masqd starts with its defaults (--mode=auto picks nftables here). Not one probe may
// leave with the pod's address or fail, the agent must remove the old chains only after its table is live,
// and afterwards only masqd's rules are left.
func TestAgentMigrationUnderTraffic(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	for _, variant := range []string{iptables.VariantLegacy, iptables.VariantNFT} {
		t.Run(variant, func(t *testing.T) {
			m := startMigration(t, variant)
			lab := m.lab
			a := startAgent(t, lab.Node, 9745, "--config=/nonexistent/ip-masq-agent", "--enable-ipv6")
			a.waitStatus("/readyz", http.StatusOK)
			waitFor(t, 10*time.Second, "the old chains removed", func() error {
				for _, bin := range []string{"iptables-" + variant + "-save", "ip6tables-" + variant + "-save"} {
					if out := lab.Node.Run(t, bin, "-t", "nat"); strings.Contains(out, "IP-MASQ") {
						return fmt.Errorf("%s still shows IP-MASQ", bin)
					}
				}
				return nil
			})
			m.finish(t)
			// The agent logs the removals once all are done, which can be after iptables-save shows them.
			var logs string
			waitFor(t, 10*time.Second, "the agent's log of the removals", func() error {
				logs = a.Logs()
				for _, fam := range []string{"iptables", "ip6tables"} {
					if removed := fmt.Sprintf(`"removed":"%s-%s nat IP-MASQ-AGENT"`, fam, variant); !strings.Contains(logs, removed) {
						return fmt.Errorf("the agent's log does not say %s", removed)
					}
				}
				return nil
			})
			if applied, removed := strings.Index(logs, `"msg":"applied"`), strings.Index(logs, `"removed":`); applied < 0 || applied > removed {
				t.Errorf("the old chains were removed before masqd's rules were applied:\n%s", logs)
			}
			checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.Internet6, lab.NodeIP6}, {lab.VPC, lab.PodIP}})
		})
	}
}
