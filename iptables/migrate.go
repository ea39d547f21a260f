package iptables

import "slices"

// MigrationStep removes chains (and their POSTROUTING jumps) from one iptables variant's nat table.
type MigrationStep struct {
	Variant string
	Chains  []string
}

// PlanMigration is what masqd removes once its own rules in backend b are verified: in each usable
// iptables variant, legacy first, the --migrate-from-chain chains (from) and masqd's own --masq-chain,
// except the chain masqd itself keeps in its own variant; and, in iptables mode, masqd's nftables table.
// When the facts hold nothing about iptables (nftables mode), every variant is a candidate:
// RemoveOldAgentChains skips those the kernel shows no nat table for.
func PlanMigration(b Backend, facts Facts, masqChain string, from []string) (steps []MigrationStep, deleteTable bool) {
	for _, v := range []struct {
		name   string
		usable bool
	}{{VariantLegacy, facts.Legacy.Usable}, {VariantNFT, facts.NFT.Usable}} {
		if facts.IPTables && !v.usable {
			continue
		}
		chains := slices.Clone(from)
		if !slices.Contains(chains, masqChain) {
			chains = append(chains, masqChain)
		}
		if b.Kind == KindIPTables && b.Variant == v.name {
			chains = slices.DeleteFunc(chains, func(c string) bool { return c == masqChain })
		}
		if len(chains) > 0 {
			steps = append(steps, MigrationStep{Variant: v.name, Chains: chains})
		}
	}
	return steps, b.Kind == KindIPTables
}
