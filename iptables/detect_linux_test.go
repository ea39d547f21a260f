//go:build linux

package iptables

import (
	"strings"
	"testing"
)

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
