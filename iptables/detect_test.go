package iptables

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/masqd/masqd/ruleset"
)

func TestChooseBackend(t *testing.T) {
	var (
		unsupported = fmt.Errorf("nftables probe: no fib: %w", ruleset.ErrNotSupported)
		denied      = errors.New("nftables probe: operation not permitted")
		// An ordinary node: both variants installed, nothing in them.
		bare = Facts{Legacy: VariantFacts{Usable: true}, NFT: VariantFacts{Usable: true}}
	)
	with := func(f Facts, edit func(*Facts)) Facts { edit(&f); return f }
	nftables := Backend{Kind: KindNFTables}
	iptNFT := Backend{Kind: KindIPTables, Variant: VariantNFT}
	iptLegacy := Backend{Kind: KindIPTables, Variant: VariantLegacy}

	tests := []struct {
		name  string
		mode  string
		facts Facts
		want  Backend
		// wantErr is a substring of the error; wantNotSupported says it wraps ruleset.ErrNotSupported.
		wantErr          string
		wantNotSupported bool
	}{
		{name: "auto, nftables works", mode: "auto", facts: bare, want: nftables},
		{name: "empty mode is auto", mode: "", facts: bare, want: nftables},
		{name: "auto prefers nftables even on a legacy node", mode: "auto",
			facts: with(bare, func(f *Facts) { f.Legacy.Counts = RuleCounts{Rules: 500, KubeletChains: true} }), want: nftables},
		{name: "auto falls back to iptables-nft on an empty node", mode: "auto",
			facts: with(bare, func(f *Facts) { f.NFTables = unsupported }), want: iptNFT},
		{name: "auto falls back to legacy where the kubelet uses legacy", mode: "auto",
			facts: with(bare, func(f *Facts) {
				f.NFTables = unsupported
				f.Legacy.Counts = RuleCounts{Rules: 3, KubeletChains: true}
				f.NFT.Counts = RuleCounts{Rules: 40}
			}), want: iptLegacy},
		{name: "auto does not fall back when the probe was denied", mode: "auto",
			facts: with(bare, func(f *Facts) { f.NFTables = denied }), wantErr: "operation not permitted"},
		{name: "auto with nothing usable", mode: "auto",
			facts: Facts{NFTables: unsupported}, wantErr: "neither iptables-nft nor iptables-legacy", wantNotSupported: true},
		{name: "nftables works", mode: "nftables", facts: bare, want: nftables},
		{name: "nftables on a kernel that cannot", mode: "nftables",
			facts: with(bare, func(f *Facts) { f.NFTables = unsupported }), wantErr: "--mode=nftables: this kernel cannot", wantNotSupported: true},
		{name: "iptables, kubelet hint in nft wins over more legacy rules", mode: "iptables",
			facts: with(bare, func(f *Facts) {
				f.NFT.Counts = RuleCounts{Rules: 2, KubeletChains: true}
				f.Legacy.Counts = RuleCounts{Rules: 90, KubeletChains: true}
			}), want: iptNFT},
		{name: "iptables, kubelet hint in legacy only", mode: "iptables",
			facts: with(bare, func(f *Facts) {
				f.Legacy.Counts = RuleCounts{Rules: 1, KubeletChains: true}
				f.NFT.Counts = RuleCounts{Rules: 10}
			}), want: iptLegacy},
		{name: "iptables, no hint, more legacy rules", mode: "iptables",
			facts: with(bare, func(f *Facts) { f.Legacy.Counts.Rules, f.NFT.Counts.Rules = 11, 10 }), want: iptLegacy},
		{name: "iptables, no hint, equal counts pick nft", mode: "iptables",
			facts: with(bare, func(f *Facts) { f.Legacy.Counts.Rules, f.NFT.Counts.Rules = 7, 7 }), want: iptNFT},
		{name: "iptables, no hint, more nft rules", mode: "iptables",
			facts: with(bare, func(f *Facts) { f.Legacy.Counts.Rules, f.NFT.Counts.Rules = 1, 30 }), want: iptNFT},
		{name: "iptables, nft picked but not usable: legacy", mode: "iptables",
			facts: with(bare, func(f *Facts) { f.NFT.Usable = false }), want: iptLegacy},
		{name: "iptables, legacy picked but not usable: nft", mode: "iptables",
			facts: with(bare, func(f *Facts) { f.Legacy.Usable = false; f.Legacy.Counts.Rules = 5 }), want: iptNFT},
		{name: "iptables chosen even when nftables works", mode: "iptables", facts: bare, want: iptNFT},
		{name: "iptables with no iptables", mode: "iptables", facts: Facts{},
			wantErr: "--mode=iptables: neither", wantNotSupported: true},
		{name: "unknown mode", mode: "ipvs", facts: bare, wantErr: `--mode="ipvs"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseBackend(tc.mode, tc.facts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ChooseBackend: %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if errors.Is(err, ruleset.ErrNotSupported) != tc.wantNotSupported {
					t.Fatalf("errors.Is(%v, ruleset.ErrNotSupported) = %t, want %t", err, !tc.wantNotSupported, tc.wantNotSupported)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ChooseBackend: %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestBackendString(t *testing.T) {
	for b, want := range map[Backend]string{
		{Kind: KindNFTables}:                         "nftables",
		{Kind: KindIPTables, Variant: VariantNFT}:    "iptables-nft",
		{Kind: KindIPTables, Variant: VariantLegacy}: "iptables-legacy",
	} {
		if got := b.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", b, got, want)
		}
	}
}

// TestCountSave counts a real iptables-legacy-save dump of a kubeadm node (trimmed), as the wrappers do.
func TestCountSave(t *testing.T) {
	data, err := os.ReadFile("testdata/iptables/kubelet-node.save")
	if err != nil {
		t.Fatal(err)
	}
	got := countSave(string(data))
	if want := (RuleCounts{Rules: 9, KubeletChains: true}); got != want {
		t.Fatalf("countSave = %+v, want %+v", got, want)
	}
	if got := countSave("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"); got != (RuleCounts{}) {
		t.Fatalf("countSave of an empty table = %+v, want zero", got)
	}
}
