// Package conntrack deletes the kernel's connection tracking entries of flows whose masquerade verdict an
// edit changed (flushConntrack, --flush-conntrack). The kernel translates a flow once, when its first
// packet meets the postrouting rule, and keeps that translation in the flow's conntrack entry until the
// entry expires: without this, a long-lived UDP stream or TCP connection to a range just made
// non-masquerade keeps leaving with the node's address (and one to a range just made masquerade keeps the
// pod's). Deleting the entry makes the flow's next packet meet the new rule.
//
// Conn.Flush reads the table through ctnetlink as a stream and deletes exactly the entries
// the new rule decides differently: from a source that is not an address of this host to a destination in
// ruleset.Flipped's ranges. It needs CAP_NET_ADMIN in the network namespace; an EPERM comes back as a
// *ruleset.PrivilegeError. It never logs and builds only on Linux; the agent calls it after a commit.
package conntrack
