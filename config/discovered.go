package config

import (
	"cmp"
	"net/netip"
	"slices"
)

// DiscoverPodCIDRsFlag is the agent's flag that adds every Node's spec.podCIDRs to the pod ranges.
const DiscoverPodCIDRsFlag = "--discover-pod-cidrs"

// NodePodCIDR is one pod range of one Node (spec.podCIDRs), as DiscoverPodCIDRsFlag reads it.
type NodePodCIDR struct {
	Node   string
	Prefix netip.Prefix
}

// NodePodCIDRSource is the Source of a pod range read from the Node node: its Flag says the node and the flag
// ("node NAME (--discover-pod-cidrs)"), so that explain and status say where the prefix came from.
func NodePodCIDRSource(node string) Source {
	return Source{Flag: "node " + node + " (" + DiscoverPodCIDRsFlag + ")"}
}

// WithNodePodCIDRs returns cfg with the nodes' pod ranges pods added to its ClusterCIDRs, as --cluster-cidr's
// are: merged into the non-masquerade set, not counted against cidrLimit. A prefix ClusterCIDRs already holds
// (from the key or --cluster-cidr) keeps its source; IPv6 ones are left out while IPv6 is off; a prefix two
// nodes share is added once, sourced to the first node by name. The added ones come after the others, sorted
// by prefix, so the same Nodes always give an equal Config. Prefixes must be masked. cfg is not modified.
func WithNodePodCIDRs(cfg Config, pods []NodePodCIDR) Config {
	if len(pods) == 0 {
		return cfg
	}
	sorted := slices.Clone(pods)
	slices.SortFunc(sorted, func(a, b NodePodCIDR) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()), cmp.Compare(a.Node, b.Node))
	})
	have := make(map[netip.Prefix]bool, len(cfg.ClusterCIDRs)+len(sorted))
	for _, c := range cfg.ClusterCIDRs {
		have[c.Prefix] = true
	}
	out := make([]CIDR, len(cfg.ClusterCIDRs), len(cfg.ClusterCIDRs)+len(sorted))
	copy(out, cfg.ClusterCIDRs)
	for _, p := range sorted {
		if !p.Prefix.IsValid() || have[p.Prefix] || p.Prefix.Addr().Is6() && !cfg.EnableIPv6 {
			continue
		}
		have[p.Prefix] = true
		out = append(out, CIDR{Prefix: p.Prefix, Source: NodePodCIDRSource(p.Node)})
	}
	cfg.ClusterCIDRs = out
	return cfg
}
