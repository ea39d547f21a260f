package iptables

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

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
		chains = []string{"IP-MASQ-AGENT", "IP-MASQ"} // ip-masq-agent's default and GKE's --masq-chain
	}
	if variants == nil {
		variants = []string{VariantLegacy, VariantNFT}
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
	family := byte(unix.NFPROTO_IPV4)
	if f == IPv6 {
		family = unix.NFPROTO_IPV6
	}
	exists, err := nft.TableExists(0, family, "nat")
	return exists || err != nil && !errors.Is(err, unix.EPROTONOSUPPORT) && !errors.Is(err, unix.EAFNOSUPPORT)
}

// Migrator returns the function that carries out PlanMigration, for the agent and masqd --once: it
// returns what it removed. It needs CAP_NET_ADMIN.
func Migrator(b Backend, facts Facts, masqChain string, from []string) func() ([]string, error) {
	steps, deleteTable := PlanMigration(b, facts, masqChain, from)
	return func() ([]string, error) {
		var removed []string
		for _, s := range steps {
			r, err := RemoveOldAgentChains("", s.Chains, []string{s.Variant})
			removed = append(removed, r...)
			if err != nil {
				return removed, err
			}
		}
		if deleteTable {
			conn := nft.NewConn(0)
			if _, present, err := conn.Read(); err == nil && present {
				if err := conn.Delete(); err != nil {
					return removed, err
				}
				removed = append(removed, "nftables table inet "+ruleset.TableName)
			}
			// A kernel that cannot be read here (no nf_tables: the reason for iptables mode) has no table.
		}
		return removed, nil
	}
}

// Cleanup removes both backends' state: table inet masqd, and chain (with its POSTROUTING jumps) from
// iptables-legacy and iptables-nft in both families. A variant whose commands cannot run here is skipped:
// masqd cannot have written to it either. It returns what it made sure is gone. A permission error is
// returned at once (os.ErrPermission: it needs CAP_NET_ADMIN).
func Cleanup(chain string) (gone []string, err error) {
	var errs []error
	if err := nft.NewConn(0).Delete(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, err // the iptables commands would be refused too
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EPROTONOSUPPORT) { // no nf_tables: no table
			errs = append(errs, err)
		}
	} else {
		gone = append(gone, "nftables table inet "+ruleset.TableName)
	}
	for _, v := range []string{VariantLegacy, VariantNFT} {
		ipt, err := NewIPTables(v, chain, "")
		if err != nil {
			return gone, err
		}
		// A variant whose iptables-save cannot run here (not installed; iptables-legacy as a non-root user)
		// is one masqd cannot have written to either, as GatherFacts counts it unusable.
		if _, err := ipt.Read(); err != nil {
			continue
		}
		if err := ipt.Delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, "iptables-"+v+" chain "+chain)
	}
	return gone, errors.Join(errs...)
}
