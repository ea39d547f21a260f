package status

import (
	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

// readKernel reads table inet masqd in this network namespace (needs CAP_NET_ADMIN).
func readKernel() (ruleset.Ruleset, bool, error) { return nft.NewConn(0).Read() }

// iptablesHolding names the iptables variants whose nat table holds chain.
func iptablesHolding(chain string) []string {
	var found []string
	for _, v := range []string{iptables.VariantNFT, iptables.VariantLegacy} {
		if ipt, err := iptables.NewIPTables(v, chain, ""); err == nil {
			if s, err := ipt.Read(); err == nil && (s.V4.Chain || s.V6.Chain) {
				found = append(found, iptables.Backend{Kind: iptables.KindIPTables, Variant: v}.String())
			}
		}
	}
	return found

}
