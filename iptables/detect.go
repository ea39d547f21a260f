package iptables

import (
	"errors"
	"fmt"

	"github.com/masqd/masqd/ruleset"
)

// Variants of the iptables commands, as in iptables-VARIANT-save.
const (
	VariantNFT    = "nft"
	VariantLegacy = "legacy"
)

// Backend kinds.
const (
	KindNFTables = "nftables"
	KindIPTables = "iptables"
)

// Backend is where masqd's rules live: its own nftables table, or ip-masq-agent's chain through one
// iptables variant.
type Backend struct {
	Kind string // KindNFTables or KindIPTables
	// Variant is VariantNFT or VariantLegacy for KindIPTables, "" for KindNFTables.
	Variant string
}

// String is the backend as logs and metrics name it: "nftables", "iptables-nft" or "iptables-legacy".
func (b Backend) String() string {
	if b.Kind == KindIPTables {
		return b.Kind + "-" + b.Variant
	}
	return b.Kind
}

// VariantFacts are what one iptables variant's save commands showed.
type VariantFacts struct {
	// Usable says whether the variant's iptables-save ran (installed, and the kernel side answered).
	Usable bool
	// Counts are of iptables-save and ip6tables-save output together.
	Counts RuleCounts
}

// Facts are what the node showed when asked (GatherFacts); ChooseBackend decides from them alone. In the
// zero value nftables counts as usable and neither iptables variant as usable.
type Facts struct {
	// NFTables is ProbeNFTables' result: nil when the kernel accepted a transaction with masqd's NAT chain
	// and fib rules; an error wrapping ruleset.ErrNotSupported when it lacks what they need.
	NFTables error
	// IPTables says whether Legacy and NFT were gathered: only when the mode may choose iptables, as the
	// iptables-save runs cost a whole-process start tens of milliseconds.
	IPTables bool
	Legacy   VariantFacts
	NFT      VariantFacts
}

// NeedsIPTables reports whether ChooseBackend(mode, facts) may look at the iptables variants: the nftables
// probe decides alone when mode is nftables, or auto and the probe passed.
func NeedsIPTables(mode string, facts Facts) bool {
	switch mode {
	case KindNFTables:
		return false
	case KindIPTables:
		return true
	}
	return facts.NFTables != nil
}

// ChooseBackend picks the backend for mode ("auto", "nftables" or "iptables"; "" means auto) from facts.
//
//   - nftables: masqd's table; an error wrapping ruleset.ErrNotSupported when the probe says the kernel cannot.
//   - iptables: ip-masq-agent's chain, with the variant kubernetes-sigs/iptables-wrappers would pick: nft
//     when the kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain is in iptables-nft, else legacy
//     when it is in iptables-legacy, else legacy when iptables-legacy holds more rules than iptables-nft,
//     else nft. A pick whose commands are not usable gives way to the other variant.
//   - auto: nftables when the probe passed; when it failed with ruleset.ErrNotSupported, iptables as above. A
//     probe that failed for another reason (permission denied) is returned, not fallen back from.
func ChooseBackend(mode string, facts Facts) (Backend, error) {
	switch mode {
	case "nftables":
		if facts.NFTables != nil {
			return Backend{}, fmt.Errorf("--mode=nftables: this kernel cannot run masqd's nftables table: %w", facts.NFTables)
		}
		return Backend{Kind: KindNFTables}, nil
	case "iptables":
		v, err := chooseVariant(facts)
		if err != nil {
			return Backend{}, fmt.Errorf("--mode=iptables: %w", err)
		}
		return Backend{Kind: KindIPTables, Variant: v}, nil
	case "auto", "":
		if facts.NFTables == nil {
			return Backend{Kind: KindNFTables}, nil
		}
		if !errors.Is(facts.NFTables, ruleset.ErrNotSupported) {
			return Backend{}, fmt.Errorf("--mode=auto: probing nftables: %w", facts.NFTables)
		}
		v, err := chooseVariant(facts)
		if err != nil {
			return Backend{}, fmt.Errorf("--mode=auto: nftables cannot be used (%v), and %w", facts.NFTables, err)
		}
		return Backend{Kind: KindIPTables, Variant: v}, nil
	}
	return Backend{}, fmt.Errorf("--mode=%q: want auto, nftables or iptables", mode)
}

// chooseVariant is iptables-wrappers' choice, then a fallback to the variant that works.
func chooseVariant(f Facts) (string, error) {
	pick, other := VariantNFT, VariantLegacy
	switch {
	case f.NFT.Counts.KubeletChains:
	case f.Legacy.Counts.KubeletChains:
		pick, other = VariantLegacy, VariantNFT
	case f.Legacy.Counts.Rules > f.NFT.Counts.Rules:
		pick, other = VariantLegacy, VariantNFT
	}
	usable := map[string]bool{VariantNFT: f.NFT.Usable, VariantLegacy: f.Legacy.Usable}
	switch {
	case usable[pick]:
		return pick, nil
	case usable[other]:
		return other, nil
	}
	return "", fmt.Errorf("neither iptables-nft nor iptables-legacy can be run: %w", ruleset.ErrNotSupported)
}
