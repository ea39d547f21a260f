package nft

import (
	"errors"
	"fmt"
	"os/exec"
)

// DefaultOldAgentChains are the chains ip-masq-agent writes: its default and GKE's --masq-chain.
var DefaultOldAgentChains = []string{"IP-MASQ-AGENT", "IP-MASQ"}

// DefaultOldAgentVariants are the iptables variants searched for them, in the order they are cleaned.
var DefaultOldAgentVariants = []string{VariantLegacy, VariantNFT}

// RemoveOldAgentChains removes ip-masq-agent's rules: for each variant in order (nil means legacy, then
// nft), for IPv4 and then IPv6, and for each chain (nil means IP-MASQ-AGENT and IP-MASQ), every
// POSTROUTING rule in the nat table whose target is the chain (matched by the jump target alone, whatever
// its comment) and then the chain, both in one iptables-restore transaction. It touches no other chain
// and no other table; a chain or jump that is not there, or a variant whose commands are not installed,
// is skipped, but a variant whose iptables-save fails (iptables-nft on a kernel without nf_tables) is an
// error: pass only the variants GatherFacts found usable. It returns what it removed, as
// "iptables-legacy nat IP-MASQ-AGENT", also when it stops at an error.
//
// Call it only once masqd's own rules are live and verified: from then on the old chain only duplicates
// them, so removing it leaves no moment without masquerade. In iptables mode, leave masqd's own chain and
// variant out of chains and variants. netnsPath runs the commands in that network namespace ("" means the
// caller's). It needs CAP_NET_ADMIN.
func RemoveOldAgentChains(netnsPath string, chains, variants []string) (removed []string, err error) {
	if chains == nil {
		chains = DefaultOldAgentChains
	}
	if variants == nil {
		variants = DefaultOldAgentVariants
	}
	for _, v := range variants {
		if v != VariantNFT && v != VariantLegacy {
			return removed, fmt.Errorf("remove old agent chains: variant %q: want %q or %q", v, VariantNFT, VariantLegacy)
		}
		t := &IPTables{variant: v, netns: netnsPath}
		for _, f := range families {
			out, err := t.save(f)
			if errors.Is(err, exec.ErrNotFound) {
				continue
			}
			if err != nil {
				return removed, fmt.Errorf("remove old agent chains: read %s: %w", t.bin(f, ""), err)
			}
			for _, chain := range chains {
				have := parseSave(out, chain)
				if !have.Chain && len(have.Jumps) == 0 {
					continue
				}
				if err := t.remove(f, chain, have); err != nil {
					return removed, fmt.Errorf("remove old agent chains: %s: %w", t.bin(f, ""), err)
				}
				removed = append(removed, fmt.Sprintf("%s nat %s", t.bin(f, ""), chain))
			}
		}
	}
	return removed, nil
}
