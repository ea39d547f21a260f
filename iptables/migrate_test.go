package iptables

import (
	"reflect"
	"testing"
)

// TestMigrationPlan: what masqd removes once its rules are verified, per backend.
func TestMigrationPlan(t *testing.T) {
	both := Facts{IPTables: true, Legacy: VariantFacts{Usable: true}, NFT: VariantFacts{Usable: true}}
	onlyNFT := Facts{IPTables: true, NFT: VariantFacts{Usable: true}}
	notGathered := Facts{} // nftables mode: the kernel says at migration which variants have a nat table
	defaults := []string{"IP-MASQ-AGENT", "IP-MASQ"}
	nftables := Backend{Kind: KindNFTables}
	iptNFT := Backend{Kind: KindIPTables, Variant: VariantNFT}
	iptLegacy := Backend{Kind: KindIPTables, Variant: VariantLegacy}
	for _, tc := range []struct {
		name        string
		backend     Backend
		facts       Facts
		masqChain   string
		from        []string
		steps       []MigrationStep
		deleteTable bool
	}{
		{"nftables: both variants, legacy first", nftables, both, "IP-MASQ-AGENT", defaults,
			[]MigrationStep{{"legacy", defaults}, {"nft", defaults}}, false},
		{"nftables: own --masq-chain too", nftables, both, "MASQD", defaults,
			[]MigrationStep{{"legacy", []string{"IP-MASQ-AGENT", "IP-MASQ", "MASQD"}}, {"nft", []string{"IP-MASQ-AGENT", "IP-MASQ", "MASQD"}}}, false},
		{"nftables: migration off still leaves no masqd chain", nftables, onlyNFT, "IP-MASQ-AGENT", nil,
			[]MigrationStep{{"nft", []string{"IP-MASQ-AGENT"}}}, false},
		{"nftables: no iptables", nftables, Facts{IPTables: true}, "IP-MASQ-AGENT", defaults, nil, false},
		{"nftables: iptables not asked", nftables, notGathered, "IP-MASQ-AGENT", defaults,
			[]MigrationStep{{"legacy", defaults}, {"nft", defaults}}, false},
		{"iptables-nft keeps its own chain", iptNFT, both, "IP-MASQ-AGENT", defaults,
			[]MigrationStep{{"legacy", defaults}, {"nft", []string{"IP-MASQ"}}}, true},
		{"iptables-legacy with GKE's chain", iptLegacy, both, "IP-MASQ", defaults,
			[]MigrationStep{{"legacy", []string{"IP-MASQ-AGENT"}}, {"nft", defaults}}, true},
		{"iptables-nft, migration off, only nft", iptNFT, onlyNFT, "IP-MASQ-AGENT", nil, nil, true},
	} {
		steps, del := PlanMigration(tc.backend, tc.facts, tc.masqChain, tc.from)
		if !reflect.DeepEqual(steps, tc.steps) || del != tc.deleteTable {
			t.Errorf("%s: steps %v, delete table %t; want %v, %t", tc.name, steps, del, tc.steps, tc.deleteTable)
		}
	}
}
