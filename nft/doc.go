// Package nft turns a config into masqd's nftables ruleset and keeps the kernel in step with it.
//
// The desired ruleset is a plain value (Ruleset) computed by Compile, a pure function of the config and flags.
// It renders itself as nft text (String), which is exactly what `nft list table inet masqd` prints after it is
// applied. Conn applies a Ruleset in one netlink batch (one kernel transaction), reads the kernel's table back
// as a Ruleset, and removes it. The package never logs.
package nft
