package nft

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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
// is skipped, and so is a variant and family the kernel shows no nat table for (without running its
// iptables-save, see mayHaveNAT); a variant whose iptables-save fails is an error. It returns what it removed, as
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
			if !mayHaveNAT(v, f, netnsPath) {
				continue
			}
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

// mayHaveNAT reports whether the kernel may hold a nat table of variant and family, which alone can hold
// ip-masq-agent's chain. It asks cheaply, to spare the iptables-save runs where there is nothing: the
// legacy tables of the caller's namespace are listed in /proc/net/ip{,6}_tables_names (absent without the
// ip_tables module; a file masqd may not read means iptables-legacy-save could not run here either);
// iptables-nft's nat table is nftables table "nat" of family ip or ip6. For another namespace, where it
// cannot tell, it says true.
func mayHaveNAT(variant string, f Family, netnsPath string) bool {
	if netnsPath != "" {
		return true
	}
	if variant == VariantLegacy {
		name := "/proc/net/ip_tables_names"
		if f == IPv6 {
			name = "/proc/net/ip6_tables_names"
		}
		data, err := os.ReadFile(name)
		if err != nil {
			// Absent: no legacy table at all. Not readable (no CAP_DAC_OVERRIDE): iptables-legacy-save
			// could not read the tables either, as GatherFacts would find it unusable.
			return false
		}
		return slices.Contains(strings.Fields(string(data)), "nat")
	}
	s, err := dialSock(0)
	if err != nil {
		return true
	}
	defer s.close()
	family := byte(unix.NFPROTO_IPV4)
	if f == IPv6 {
		family = unix.NFPROTO_IPV6
	}
	err = s.request(unix.NFT_MSG_GETTABLE, family, appendAttrString(nil, unix.NFTA_TABLE_NAME, "nat"), func(syscall.NetlinkMessage) {})
	return !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EPROTONOSUPPORT) && !errors.Is(err, unix.EAFNOSUPPORT)
}
