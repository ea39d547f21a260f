package iptables

import (
	"fmt"
	"os"

	"github.com/masqd/masqd/nft"
)

// GatherFacts observes what ChooseBackend needs for mode, in the network namespace pinned at netnsPath (""
// means the caller's): ProbeNFTables, and, when NeedsIPTables says the choice may depend on them, for each
// iptables variant whether its iptables-save runs and what iptables-save and ip6tables-save show (rule lines,
// the kubelet's chains). A variant whose commands are missing or fail counts as unusable with no rules, as
// iptables-wrappers counts it. It changes nothing and needs CAP_NET_ADMIN.
func GatherFacts(netnsPath, mode string) (Facts, error) {
	var f Facts
	fd := 0
	if netnsPath != "" {
		ns, err := os.Open(netnsPath)
		if err != nil {
			return f, fmt.Errorf("gather facts: open network namespace: %w", err)
		}
		defer ns.Close()
		fd = int(ns.Fd())
	}
	f.NFTables = nft.ProbeNFTables(fd)
	if NeedsIPTables(mode, f) {
		f.IPTables = true
		f.Legacy = variantFacts(VariantLegacy, netnsPath)
		f.NFT = variantFacts(VariantNFT, netnsPath)
	}
	return f, nil
}

func variantFacts(variant, netnsPath string) VariantFacts {
	t := &IPTables{variant: variant, netns: netnsPath}
	out4, err := t.run(nil, t.bin(IPv4, "-save"))
	out6, _ := t.run(nil, t.bin(IPv6, "-save"))
	return VariantFacts{Usable: err == nil, Counts: countSave(out4 + "\n" + out6)}
}
