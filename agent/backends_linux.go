package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

// NFTables is masqd's table inet masqd, through an nft.Conn. It is a Watcher: the nftables monitor sees
// every commit.
type NFTables struct{ conn *nft.Conn }

// NewNFTables returns the nftables backend over conn.
func NewNFTables(conn *nft.Conn) *NFTables { return &NFTables{conn: conn} }

func (b *NFTables) Name() string                                  { return iptables.KindNFTables }
func (b *NFTables) Apply(d Desired) (ruleset.Change, error)       { return b.conn.Apply(d.Ruleset) }
func (b *NFTables) Present() (bool, error)                        { return b.conn.Present() }
func (b *NFTables) Forget()                                       { b.conn.Forget() }
func (b *NFTables) Counters() (v4, v6 ruleset.Counter, err error) { return b.conn.Counters() }
func (b *NFTables) Delete() error                                 { return b.conn.Delete() }

// Held reads table inet masqd as the kernel holds it (a Holder).
func (b *NFTables) Held() (ruleset.Ruleset, bool, error) { return b.conn.Read() }

// Verify trusts the kernel's acknowledgement of masqd's last transaction: d is in the kernel when that
// transaction wrote it and nobody has touched the table since. It does not read the sets, which at 100,000
// prefixes costs the kernel a second.
func (b *NFTables) Verify(d Desired) error {
	ok, err := b.conn.InSync(d.Ruleset)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("nftables: table inet %s may have changed since masqd's last transaction", ruleset.TableName)
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
	ipt     *iptables.IPTables
	opts    iptables.IPTablesOptions
	monitor *nft.Conn
}

// NewIPTables returns the iptables backend: ipt's chain, compiled with opts (opts.Chain is set to ipt's).
// monitor, for iptables-nft, is the nftables connection whose commits Watch follows; nil watches nothing.
func NewIPTables(ipt *iptables.IPTables, opts iptables.IPTablesOptions, monitor *nft.Conn) *IPTables {
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

func (b *IPTables) Name() string { return iptables.KindIPTables + "-" + b.ipt.Variant() }

func (b *IPTables) rules(d Desired) iptables.IPTablesRules {
	return iptables.CompileIPTables(d.Config, b.opts)
}

// Apply reads the chain and rewrites it only when it differs (every Apply compares in full). A config the
// chain cannot express (iptables.Unsupported) is an error, and the chain stays as it was.
func (b *IPTables) Apply(d Desired) (ruleset.Change, error) {
	if err := iptables.Unsupported(d.Config); err != nil {
		return ruleset.Unchanged, err
	}
	return b.ipt.Apply(b.rules(d))
}

func (b *IPTables) Verify(d Desired) error {
	if err := iptables.Unsupported(d.Config); err != nil {
		return err
	}
	ok, err := b.ipt.InSync(b.rules(d))
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("iptables: chain " + b.ipt.Chain() + " reads back different from the desired rules")
	}
	return nil
}

// Present reads the chain of both families.
func (b *IPTables) Present() (bool, error) {
	s, err := b.ipt.Read()
	if err != nil {
		return false, err
	}
	return s.V4.Chain || s.V6.Chain, nil
}

// Held reads the chain of both families and models what it does (iptables.HeldRuleset; a Holder).
func (b *IPTables) Held() (ruleset.Ruleset, bool, error) {
	s, err := b.ipt.Read()
	if err != nil {
		return ruleset.Ruleset{}, false, err
	}
	return iptables.HeldRuleset(s.V4, s.V6), s.V4.Chain || s.V6.Chain, nil
}

// Forget does nothing: the iptables backend remembers nothing of the kernel.
func (b *IPTables) Forget()                                       {}
func (b *IPTables) Counters() (v4, v6 ruleset.Counter, err error) { return b.ipt.Counters() }
func (b *IPTables) Delete() error                                 { return b.ipt.Delete() }

// NewBackend makes the Backend b names, in the caller's network namespace: nftables, or ip-masq-agent's
// chain (named chain) through an iptables variant. opts are the masquerade flags for both. It logs when
// this iptables cannot do what opts ask. It needs CAP_NET_ADMIN only when the backend is used.
func NewBackend(b iptables.Backend, chain string, opts ruleset.Options, log *slog.Logger) (Backend, error) {
	if b.Kind == iptables.KindNFTables {
		return NewNFTables(nft.NewConn(0)), nil
	}
	ipt, err := iptables.NewIPTables(b.Variant, chain, "")
	if err != nil {
		return nil, err
	}
	ipo := iptables.IPTablesOptions{Chain: chain, RandomFully: opts.RandomFully, ToPorts: opts.ToPorts}
	if ipo.RandomFully {
		// As ip-masq-agent: --random-fully only where this iptables knows it (1.6.2 and later).
		v, err := ipt.Version()
		if err == nil {
			ipo.RandomFullySupported, err = iptables.RandomFullySupported(v)
		}
		if err != nil {
			log.Warn("cannot tell whether iptables supports --random-fully; masquerading without it", "err", err)
		} else if !ipo.RandomFullySupported {
			log.Warn("this iptables is older than 1.6.2 and has no --random-fully; masquerading without it", "version", v)
		}
	}
	var monitor *nft.Conn
	if b.Variant == iptables.VariantNFT {
		monitor = nft.NewConn(0) // iptables-nft's rules are nftables tables: their commits can be seen
	}
	return NewIPTables(ipt, ipo, monitor), nil
}
