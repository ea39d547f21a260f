// Package agent is masqd's long-running mode: one reconcile loop that keeps the kernel holding the ruleset
// the config asks for.
//
// The rules live in a Backend: masqd's nftables table (NFTables) or ip-masq-agent's iptables chain
// (IPTables). The loop is fed by sources: the config file (fsnotify on its directory), a netlink monitor
// that sees anyone else's change to masqd's table (nftables backend only), SIGHUP, a retry timer after a
// failed apply, and a resync timer at the config's resyncInterval as a safety net. An invalid config never
// changes the kernel: the last good ruleset stays. The agent also serves /healthz, /readyz and /metrics and
// tells systemd when it is ready.
package agent
