package nft

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// TestProbeNFTables: the probe passes on this kernel, and commits nothing: the ruleset generation does not
// move and the namespace's ruleset stays empty.
func TestProbeNFTables(t *testing.T) {
	n := newNetns(t)
	before, err := n.conn.generation()
	if err != nil {
		t.Fatal(err)
	}
	if err := ProbeNFTables(n.conn.netns); err != nil {
		t.Fatalf("ProbeNFTables: %v", err)
	}
	after, err := n.conn.generation()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("generation moved from %d to %d: the probe committed", before, after)
	}
	if got := n.nft(t, "list", "ruleset"); got != "" {
		t.Errorf("ruleset after the probe:\n%s", got)
	}
}

// TestProbeRejects shows that the kernel's answers to an unterminated batch come back, and that the ones
// meaning "cannot" wrap ErrNotSupported, with nothing created.
func TestProbeRejects(t *testing.T) {
	n := newNetns(t)
	for name, tc := range map[string]struct {
		queue func(*nftables.Conn) error
		errno error
	}{
		"nat chain on the forward hook": {func(nc *nftables.Conn) error {
			table := nc.AddTable(&nftables.Table{Name: "bad", Family: nftables.TableFamilyINet})
			nc.AddChain(&nftables.Chain{Name: "fwd", Table: table, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityNATSource})
			return nil
		}, unix.EOPNOTSUPP},
		"lookup in a set that does not exist": {func(nc *nftables.Conn) error {
			table := nc.AddTable(&nftables.Table{Name: "bad", Family: nftables.TableFamilyINet})
			chain := nc.AddChain(&nftables.Chain{Name: "post", Table: table, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
			nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: ruleExprs(unix.NFPROTO_IPV4, nil, true)})
			return nil
		}, unix.ENOENT},
	} {
		t.Run(name, func(t *testing.T) {
			msgs, err := captureBatch(tc.queue)
			if err != nil {
				t.Fatal(err)
			}
			err = checkBatch(n.conn.netns, msgs)
			if !errors.Is(err, ErrNotSupported) || !errors.Is(err, tc.errno) {
				t.Fatalf("checkBatch: %v, want %v as ErrNotSupported", err, tc.errno)
			}
			if got := n.nft(t, "list", "ruleset"); got != "" {
				t.Errorf("ruleset after a rejected probe:\n%s", got)
			}
		})
	}
}

// TestGatherFactsAuto is the real-kernel check that auto picks nftables here, and that the facts about
// iptables are read as iptables-wrappers reads them.
func TestGatherFactsAuto(t *testing.T) {
	n := newNetns(t)
	requireIPTables(t)
	facts, err := GatherFacts(n.path(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	if facts.NFTables != nil || facts.IPTables {
		t.Fatalf("auto, where nftables works, gathered the iptables facts: %+v", facts)
	}
	if facts, err = GatherFacts(n.path(), "iptables"); err != nil {
		t.Fatal(err)
	}
	empty := VariantFacts{Usable: true}
	if facts.NFTables != nil || !facts.IPTables || facts.Legacy != empty || facts.NFT != empty {
		t.Fatalf("facts of an empty namespace: %+v", facts)
	}
	for mode, want := range map[string]Backend{
		"auto":     {Kind: KindNFTables},
		"nftables": {Kind: KindNFTables},
		"iptables": {Kind: KindIPTables, Variant: VariantNFT},
	} {
		if got, err := ChooseBackend(mode, facts); err != nil || got != want {
			t.Errorf("ChooseBackend(%q) = %v, %v; want %v", mode, got, err, want)
		}
	}

	// A kubelet on iptables-legacy: its hint chain in mangle, a rule in filter, and more in nft.
	n.restore(t, "iptables-legacy-restore", "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n*filter\n-A INPUT -j ACCEPT\nCOMMIT\n")
	n.restore(t, "ip6tables-nft-restore", "*filter\n-A INPUT -j ACCEPT\n-A OUTPUT -j ACCEPT\nCOMMIT\n")
	if facts, err = GatherFacts(n.path(), "iptables"); err != nil {
		t.Fatal(err)
	}
	if want := (VariantFacts{Usable: true, Counts: RuleCounts{Rules: 1, KubeletChains: true}}); facts.Legacy != want {
		t.Errorf("legacy facts %+v, want %+v", facts.Legacy, want)
	}
	if want := (VariantFacts{Usable: true, Counts: RuleCounts{Rules: 2}}); facts.NFT != want {
		t.Errorf("nft facts %+v, want %+v", facts.NFT, want)
	}
	if got, err := ChooseBackend("iptables", facts); err != nil || got != (Backend{Kind: KindIPTables, Variant: VariantLegacy}) {
		t.Errorf("ChooseBackend(iptables) on a legacy kubelet node = %v, %v", got, err)
	}
	if got, err := ChooseBackend("auto", facts); err != nil || got.Kind != KindNFTables {
		t.Errorf("ChooseBackend(auto) = %v, %v; want nftables", got, err)
	}
	if _, err := GatherFacts("/nonexistent/netns", "auto"); err == nil || !strings.Contains(err.Error(), "network namespace") {
		t.Errorf("GatherFacts of a missing namespace: %v", err)
	}
}
