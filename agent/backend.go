package agent

import (
	"context"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// Desired is what the agent wants in the kernel for one valid config: the config, and its nftables ruleset
// (ruleset.Compile with Settings.NFT), which logs, metrics and ConfigMap Events describe whatever the backend.
type Desired struct {
	Config  config.Config
	Ruleset ruleset.Ruleset
}

// Backend keeps the rules for a Desired in the kernel: masqd's nftables table (NFTables) or ip-masq-agent's
// iptables chain (IPTables). The agent's loop uses nothing else. Methods are called from one goroutine at a
// time, except Counters (scrapes) and Forget (the kernel watch), which may run beside the others.
type Backend interface {
	// Name is the backend as logs and masqd_build_info say it: nftables, iptables-nft or iptables-legacy.
	Name() string
	// Apply makes the kernel hold d and says what it sent.
	Apply(d Desired) (ruleset.Change, error)
	// Verify returns nil only when the kernel is known to hold exactly d: the nftables backend knows it
	// from the kernel's acknowledgement of its last transaction, the iptables backend reads the chain.
	Verify(d Desired) error
	// Present reports whether the kernel holds any of the backend's rules, whoever wrote them (this process or
	// an earlier masqd): table inet masqd, or the chain in either family.
	Present() (bool, error)
	// Forget drops what the backend remembers of the kernel: the next Apply compares with it in full.
	Forget()
	// Counters are the masquerade rules' packets and bytes by family.
	Counters() (v4, v6 ruleset.Counter, err error)
	// Delete removes everything the backend made; what is already gone is not an error.
	Delete() error
}

// Watcher is a Backend that can see the kernel change. Watch calls drift whenever another process changed the
// backend's rules, until ctx is done (it then returns nil) or watching fails: notifications may then have
// been lost, and the caller compares in full and calls Watch again.
type Watcher interface {
	Watch(ctx context.Context, drift func(Drift)) error
}

// Drift is another process's change to the backend's rules, or with Suspect a change that may have touched
// them: only a full compare can tell.
type Drift struct {
	Process string
	PID     uint32
	Gen     uint32 // the nftables generation the change created
	Suspect bool
}

// Holder is a Backend that can read which destinations the kernel's rules leave unmasqueraded, whoever wrote
// them: the agent reads it once before its first apply with the conntrack flush on, so that the flows a
// restart's new config flips are flushed too. present is false when the kernel holds none of the backend's
// rules.
type Holder interface {
	Held() (r ruleset.Ruleset, present bool, err error)
}

// Flusher deletes the conntrack entries of flows from sources that are not the host's to the destinations in
// flipped4 and flipped6 (ruleset.Flipped's), so that they meet the rules just committed (conntrack.Conn).
type Flusher interface {
	Flush(flipped4, flipped6 []ruleset.Interval) (deleted4, deleted6 int, err error)
}
