// Package iptables is masqd's fallback where nftables cannot be used: ip-masq-agent's own chain (IP-MASQ,
// one RETURN rule per non-masquerade CIDR, then MASQUERADE) written with iptables-restore, in the
// iptables-nft or iptables-legacy variant the node already uses.
//
// CompileIPTables (pure, any GOOS) gives the chain's rules and its restore payload; ChooseBackend decides,
// from Facts the node gives (GatherFacts), whether masqd runs nftables or iptables, and which variant;
// IPTables (Linux) applies, reads, counts and deletes the chain; PlanMigration and Migrator move a node
// from ip-masq-agent's chain to masqd's table with no moment in which packets leave unmasqueraded, and
// RemoveOldAgentChains and Cleanup remove what ip-masq-agent left. Running the iptables tools needs CAP_NET_ADMIN and CAP_NET_RAW
// and a writable xtables lock; the package never logs.
package iptables
