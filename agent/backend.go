package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/nft"
)

// Desired is what the agent wants in the kernel for one valid config: the config, and its nftables ruleset
// (nft.Compile with Settings.NFT), which logs, metrics and ConfigMap Events describe whatever the backend.
type Desired struct {
	Config  config.Config
	Ruleset nft.Ruleset
}

// Backend keeps the rules for a Desired in the kernel: masqd's nftables table (NFTables) or ip-masq-agent's
// iptables chain (IPTables). The agent's loop uses nothing else. Methods are called from one goroutine at a
// time, except Counters (scrapes) and Forget (the kernel watch), which may run beside the others.
type Backend interface {
	// Name is the backend as logs and masqd_build_info say it: nftables, iptables-nft or iptables-legacy.
	Name() string
	// Apply makes the kernel hold d and says what it sent.
	Apply(d Desired) (nft.Change, error)
	// Verify returns nil only when the kernel is known to hold exactly d: the nftables backend knows it
	// from the kernel's acknowledgement of its last transaction, the iptables backend reads the chain.
	Verify(d Desired) error
	// Forget drops what the backend remembers of the kernel: the next Apply compares with it in full.
	Forget()
	// Counters are the masquerade rules' packets and bytes by family.
	Counters() (v4, v6 nft.Counter, err error)
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

// NFTables is masqd's table inet masqd, through an nft.Conn. It is a Watcher: the nftables monitor sees
// every commit.
type NFTables struct{ conn *nft.Conn }

// NewNFTables returns the nftables backend over conn.
func NewNFTables(conn *nft.Conn) *NFTables { return &NFTables{conn: conn} }

func (b *NFTables) Name() string                              { return nft.KindNFTables }
func (b *NFTables) Apply(d Desired) (nft.Change, error)       { return b.conn.Apply(d.Ruleset) }
func (b *NFTables) Forget()                                   { b.conn.Forget() }
func (b *NFTables) Counters() (v4, v6 nft.Counter, err error) { return b.conn.Counters() }
func (b *NFTables) Delete() error                             { return b.conn.Delete() }

// Verify trusts the kernel's acknowledgement of masqd's last transaction: d is in the kernel when that
// transaction wrote it and nobody has touched the table since. It does not read the sets, which at 100,000
// prefixes costs the kernel a second.
func (b *NFTables) Verify(d Desired) error {
	ok, err := b.conn.InSync(d.Ruleset)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("nftables: table inet %s may have changed since masqd's last transaction", nft.TableName)
	}
	return nil
}

// Watch follows every nftables commit; commits that leave masqd's table alone let the Conn keep its memory.
func (b *NFTables) Watch(ctx context.Context, drift func(Drift)) error {
	return b.conn.Monitor(ctx, func(c nft.Commit) {
		switch {
		case c.Missed:
			b.conn.Forget()
			drift(Drift{Gen: c.Gen, Suspect: true})
		case c.Own:
		case c.Touched:
			b.conn.Forget()
			drift(Drift{Process: c.Process, PID: c.PID, Gen: c.Gen})
		default:
			b.conn.Advance(c.Gen)
		}
	})
}

// IPTables is ip-masq-agent's nat chain through one iptables variant. iptables-nft's rules live in nftables,
// so its Watch follows nftables commits: any commit by another process (masqd's own iptables-nft commands
// included) asks for a full compare, which sends nothing when the chain is right. iptables-legacy sends no
// notification at all: its Watch only waits, and the resync timer finds and repairs drift.
type IPTables struct {
	ipt     *nft.IPTables
	opts    nft.IPTablesOptions
	monitor *nft.Conn
}

// NewIPTables returns the iptables backend: ipt's chain, compiled with opts (opts.Chain is set to ipt's).
// monitor, for iptables-nft, is the nftables connection whose commits Watch follows; nil watches nothing.
func NewIPTables(ipt *nft.IPTables, opts nft.IPTablesOptions, monitor *nft.Conn) *IPTables {
	opts.Chain = ipt.Chain()
	return &IPTables{ipt: ipt, opts: opts, monitor: monitor}
}

// Watch reports every nftables commit by another process as a Suspect drift; without a monitor it returns
// when ctx is done. (nft.Commit does not say which tables a commit touched, so commits to tables other than
// ip and ip6 nat are compared for too; the compare is one iptables-save per family.)
func (b *IPTables) Watch(ctx context.Context, drift func(Drift)) error {
	if b.monitor == nil {
		<-ctx.Done()
		return nil
	}
	return b.monitor.Monitor(ctx, func(c nft.Commit) {
		if !c.Own {
			drift(Drift{Process: c.Process, PID: c.PID, Gen: c.Gen, Suspect: true})
		}
	})
}

func (b *IPTables) Name() string { return nft.KindIPTables + "-" + b.ipt.Variant() }

func (b *IPTables) rules(d Desired) nft.IPTablesRules { return nft.CompileIPTables(d.Config, b.opts) }

// Apply reads the chain and rewrites it only when it differs (every Apply compares in full).
func (b *IPTables) Apply(d Desired) (nft.Change, error) { return b.ipt.Apply(b.rules(d)) }

func (b *IPTables) Verify(d Desired) error {
	ok, err := b.ipt.InSync(b.rules(d))
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("iptables: chain " + b.ipt.Chain() + " reads back different from the desired rules")
	}
	return nil
}

// Forget does nothing: the iptables backend remembers nothing of the kernel.
func (b *IPTables) Forget()                                   {}
func (b *IPTables) Counters() (v4, v6 nft.Counter, err error) { return b.ipt.Counters() }
func (b *IPTables) Delete() error                             { return b.ipt.Delete() }
