// Package nft keeps masqd's table in the Linux kernel through nftables netlink: Conn sends a ruleset.Plan
// as one netlink batch a Transaction (packets see the old ruleset or the new one, never a mix), reads the
// table back (Read, Observe), removes it (Delete), and watches every commit in its network namespace
// (Monitor, Listen) so that the agent repairs drift at once. ProbeNFTables says whether the kernel can run masqd's
// ruleset at all.
//
// One connection type, Conn, owns the netlink sockets; NewConn(netnsFD) works inside another network
// namespace, which is how the tests reach theirs. Every call needs CAP_NET_ADMIN in that namespace; an
// EPERM comes back as a *ruleset.PrivilegeError. The package never logs, builds only on Linux, and is
// called by the agent (through its Backend), status, the iptables migration, and cmd/masqd's --once and
// --cleanup.
package nft
