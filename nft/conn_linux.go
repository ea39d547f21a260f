package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// Conn applies and reads masqd's table. It is safe for concurrent use; Applies are serialised. Every method
// needs CAP_NET_ADMIN in the target network namespace.
//
// Reading a large set back from the kernel is slow (a dump of 100,000 intervals takes a second of kernel
// time: the kernel walks the set from its start again for every 32 KiB of answer), so Apply never reads
// it. Conn remembers what its last commit left in the kernel, with the ruleset generation that commit made
// (the kernel acknowledges the transaction and reports the generation with it). While the generation has
// not moved, nobody has committed anything and Apply computes its changes from memory, sending only the
// elements that differ; a change is sent with the generation it was computed at, and the kernel refuses it
// if anyone has committed since. When Conn does not know what the kernel holds (its first Apply, after
// Forget, after anyone else's commit that Advance was not told about), Apply reads a small table (up to
// readLimit intervals), so that a restart with nothing to change sends nothing, and writes a larger one's
// sets whole, in one transaction that empties and refills them, which costs the kernel a fraction of
// reading them.
//
// Apply keeps a netlink socket open from one Apply to the next (closing one right after a commit makes
// the kernel wait for the commit's cleanup); Close closes it.
type Conn struct {
	netns int // network namespace fd; 0 means the caller's

	mu      sync.Mutex
	last    *ruleset.Ruleset // the kernel's table after our last commit; nil when unknown
	lastGen uint32           // the generation at which last was true
	sock    *nlSock          // Apply's socket; nil until an Apply opens it

	monMu    sync.Mutex
	monitors map[*netlink.Conn]bool // the sockets of the Monitors running on this Conn
}

// NewConn returns a Conn for the network namespace behind netnsFD, or the caller's namespace when it is 0.
func NewConn(netnsFD int) *Conn { return &Conn{netns: netnsFD} }

// dial opens an nftables connection whose socket buffers fit a batch of about elems set elements.
// google/nftables never enlarges them, and a large batch then fails with EMSGSIZE (send) or ENOBUFS (acks).
func (c *Conn) dial(elems int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(bufferOption(elems))}
	if c.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(c.netns))
	}
	return nftables.New(opts...)
}

// bufferOption sizes a netlink socket's buffers for a batch of about elems set elements.
func bufferOption(elems int) nftables.SockOption {
	size := 1<<20 + elems*64
	return func(nc *netlink.Conn) error {
		// Extended acks make the kernel say which attribute it rejected.
		_ = nc.SetOption(netlink.ExtendedAcknowledge, true)
		if err := nc.SetWriteBuffer(size); err != nil {
			return fmt.Errorf("set netlink send buffer: %w", err)
		}
		if err := nc.SetReadBuffer(size); err != nil {
			return fmt.Errorf("set netlink receive buffer: %w", err)
		}
		// The plain calls are capped by net.core.{w,r}mem_max; with CAP_NET_ADMIN the kernel lets us force it.
		raw, err := nc.SyscallConn()
		if err != nil {
			return fmt.Errorf("netlink raw conn: %w", err)
		}
		return raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		})
	}
}

// masqdTable is a fresh value each time: google/nftables keeps pointers to it in sets and chains.
func masqdTable() *nftables.Table {
	return &nftables.Table{Name: ruleset.TableName, Family: nftables.TableFamilyINet}
}

// Apply makes the kernel hold want, in one transaction: packets see the old ruleset or the new one, never a
// mix, and the table is never missing. When the kernel's table already has the right shape only the set
// elements that differ are sent; when it already equals want nothing is sent.
func (c *Conn) Apply(want ruleset.Ruleset) (ruleset.Change, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	change, err := c.applyUnheard(want)
	if err != nil && !errors.Is(err, unix.EPERM) {
		// What we remember may be what made the batch fail (someone removed an element we meant to delete,
		// or committed since we looked): forget it and try once more, writing the sets whole, on a fresh
		// socket.
		c.last = nil
		c.closeSock()
		change, err = c.applyUnheard(want)
	}
	if err != nil {
		c.closeSock()
	}
	return change, privilege(err)
}

// applyUnheard is apply with the Conn's Monitors not listening: the kernel then does not notify them of
// every element of masqd's own transaction (200,000 messages for a cold apply of 100,000 intervals, which
// would double its cost; with no listener the kernel builds no notification at all, though it counts
// listeners of every network namespace together: another namespace's `nft monitor` still costs). A commit by anyone
// else while they did not listen would go unseen, so when the generation shows one (it moved past masqd's
// own commit) the sets are written whole again with the Monitors listening.
func (c *Conn) applyUnheard(want ruleset.Ruleset) (ruleset.Change, error) {
	deaf := c.deafen()
	change, err := c.apply(want)
	c.listen(deaf)
	if err != nil || len(deaf) == 0 || c.last == nil {
		return change, err
	}
	if gen, gerr := c.sock.generation(); gerr == nil && gen == c.lastGen {
		return change, nil
	}
	c.last = nil
	if _, err := c.apply(want); err != nil {
		return ruleset.Unchanged, err
	}
	return change, nil
}

// deafen makes the Conn's Monitors leave the nftables multicast group and returns their sockets.
func (c *Conn) deafen() []*netlink.Conn {
	c.monMu.Lock()
	defer c.monMu.Unlock()
	var deaf []*netlink.Conn
	for nl := range c.monitors {
		if nl.LeaveGroup(unix.NFNLGRP_NFTABLES) == nil {
			deaf = append(deaf, nl)
		}
	}
	return deaf
}

// listen makes the deafened Monitors join the group again. One that cannot is closed: its Monitor returns
// with an error, and its caller subscribes again and compares in full, as after any lost notification.
func (c *Conn) listen(deaf []*netlink.Conn) {
	for _, nl := range deaf {
		if nl.JoinGroup(unix.NFNLGRP_NFTABLES) != nil {
			_ = nl.Close()
		}
	}
}

// Close closes the netlink socket Conn keeps open between Applies (and with it Conn's hold on the network
// namespace). The Conn stays usable: the next Apply opens another socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeSock()
}

func (c *Conn) closeSock() error {
	if c.sock == nil {
		return nil
	}
	err := c.sock.close()
	c.sock = nil
	return err
}

// socket returns Apply's socket, opening it if need be.
func (c *Conn) socket() (*nlSock, error) {
	if c.sock == nil {
		s, err := dialSock(c.netns)
		if err != nil {
			return nil, err
		}
		c.sock = s
	}
	return c.sock, nil
}

// privilege says what is missing when the kernel refused masqd for want of privilege.
func privilege(err error) error { return ruleset.NeedsNetAdmin(err) }

// Forget drops what Conn remembers of the kernel, so that the next Apply reads the table first. Call it when
// something else may have changed the table (the drift monitor saw a foreign change).
func (c *Conn) Forget() {
	c.mu.Lock()
	c.last = nil
	c.mu.Unlock()
}

func (c *Conn) apply(want ruleset.Ruleset) (ruleset.Change, error) {
	s, err := c.socket()
	if err != nil {
		return ruleset.Unchanged, err
	}
	gen, err := s.generation()
	if err != nil {
		return ruleset.Unchanged, err
	}
	plan, err := c.plan(want, gen)
	if err != nil {
		return ruleset.Unchanged, err
	}
	for i, tx := range plan.Transactions {
		b := newBatch(ruleset.TableName)
		if err := b.transaction(tx); err != nil {
			return ruleset.Unchanged, fmt.Errorf("nftables: %w", err)
		}
		if gen, err = s.commit(b, gen); err != nil {
			return ruleset.Unchanged, fmt.Errorf("nftables: apply table inet %s (%s, transaction %d of %d): %w",
				ruleset.TableName, plan.Change, i+1, len(plan.Transactions), err)
		}
	}
	if plan.Change != ruleset.Unchanged || plan.Transactions == nil {
		c.remember(want, gen)
	}
	return plan.Change, nil
}

// plan observes as much of the kernel's table as it needs to, at generation gen, and plans the change to
// want. When the Conn remembers what its last commit left and nobody has committed since, that is the
// table, elements and all; when a change of shape needs the rules' handles, the table is listed (its sets,
// chains and rules, not the elements). When the Conn knows nothing, the table is listed, and its elements
// read if it is small (up to readLimit intervals), so that a restart with nothing to change sends nothing.
func (c *Conn) plan(want ruleset.Ruleset, gen uint32) (ruleset.Plan, error) {
	if c.last != nil && c.lastGen == gen {
		p := ruleset.PlanFor(want, ruleset.Observed{Present: true, Have: c.last, Remembered: true})
		if p.Change == ruleset.Unchanged || p.Change == ruleset.Updated {
			return p, nil
		}
		obs, _, err := c.observe(false)
		if err != nil {
			return ruleset.Plan{}, err
		}
		if obs.Present {
			obs.Have, obs.Remembered = c.last, true
		}
		return ruleset.PlanFor(want, obs), nil
	}
	small := len(want.NonMasq4)+len(want.NonMasq6)+len(want.Src4)+len(want.Src6) <= readLimit
	obs, elements, err := c.observe(small)
	if err != nil {
		return ruleset.Plan{}, err
	}
	if obs.Present && small {
		have := ruleset.Assemble(obs, elements)
		obs.Have = &have
	}
	return ruleset.PlanFor(want, obs), nil
}

// readLimit is the most intervals for which Apply reads the table it knows nothing of, rather than write
// the sets whole: reading 10,000 intervals costs the kernel about 10 ms, and the cost grows with the square
// of the set (a dump restarts its walk of the set for every message).
const readLimit = 10_000

// InSync reports whether the kernel holds want, as far as Conn knows without reading the table: its last
// commit (which the kernel acknowledged) left want there, and nobody has committed since, or only commits
// that Advance was told left masqd's table alone. false means "not known", not "different".
func (c *Conn) InSync(want ruleset.Ruleset) (bool, error) {
	gen, err := c.Generation()
	if err != nil {
		return false, privilege(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last != nil && c.lastGen == gen && c.last.SameRules(want), nil
}

func (c *Conn) remember(r ruleset.Ruleset, gen uint32) {
	r.Counter4, r.Counter6 = ruleset.Counter{}, ruleset.Counter{}
	c.last, c.lastGen = &r, gen
}

// observe lists table inet masqd: whether it exists, its sets, chains and the rules of masqd's chain, and
// with elements the elements of its usable sets, by name.
func (c *Conn) observe(elements bool) (ruleset.Observed, map[string][]ruleset.Interval, error) {
	var obs ruleset.Observed
	nc, err := c.dial(0)
	if err != nil {
		return obs, nil, fmt.Errorf("nftables: %w", err)
	}
	if _, err := nc.ListTableOfFamily(ruleset.TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return obs, nil, nil
		}
		return obs, nil, fmt.Errorf("nftables: list table inet %s: %w", ruleset.TableName, err)
	}
	obs.Present = true
	table := masqdTable()
	kernelSets, err := nc.GetSets(table)
	if err != nil {
		return obs, nil, fmt.Errorf("nftables: list sets of table inet %s: %w", ruleset.TableName, err)
	}
	elems := map[string][]ruleset.Interval{}
	for _, s := range kernelSets {
		usable := s.Interval && !s.IsMap &&
			((s.Name == ruleset.Set4Name || s.Name == ruleset.Src4Name) && s.KeyType.Name == nftables.TypeIPAddr.Name ||
				(s.Name == ruleset.Set6Name || s.Name == ruleset.Src6Name) && s.KeyType.Name == nftables.TypeIP6Addr.Name ||
				s.Name == ruleset.EgressName && s.KeyType.Name == nftables.TypeIFName.Name)
		obs.Sets = append(obs.Sets, ruleset.ObservedSet{Name: s.Name, Usable: usable})
		if usable && elements {
			raw, err := c.dumpElements(s.Name)
			if err != nil {
				return obs, nil, fmt.Errorf("nftables: list elements of set %s: %w", s.Name, err)
			}
			// A set that is not a clean sequence of start and end elements is someone else's doing:
			// reading it as foreign makes Apply write it whole.
			ivs, err := intervals(raw)
			if err != nil {
				obs.Sets[len(obs.Sets)-1].Usable = false
			}
			elems[s.Name] = ivs
		}
	}
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return obs, nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	var chain *nftables.Chain
	for _, ch := range chains {
		switch {
		case ch.Table.Name != ruleset.TableName:
		case isMasqdChain(ch):
			chain, obs.Chain = ch, true
		default:
			obs.Others = append(obs.Others, ch.Name)
		}
	}
	if chain != nil {
		rules, err := nc.GetRules(table, chain)
		if err != nil {
			return obs, nil, fmt.Errorf("nftables: list rules of chain %s: %w", ruleset.ChainName, err)
		}
		for _, r := range rules {
			rule, cnt, ours := decodeRule(r.Exprs)
			obs.Rules = append(obs.Rules, ruleset.ObservedRule{Handle: r.Handle, Ours: ours, Rule: rule, Counter: cnt})
		}
	}
	return obs, elems, nil
}

// isMasqdChain says whether ch is masqd's chain as masqd makes it.
func isMasqdChain(ch *nftables.Chain) bool {
	return ch.Name == ruleset.ChainName && ch.Type == nftables.ChainTypeNAT && ch.Hooknum != nil &&
		*ch.Hooknum == *nftables.ChainHookPostrouting && ch.Priority != nil &&
		*ch.Priority == *nftables.ChainPriorityNATSource &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}

// Read returns the kernel's table inet masqd as a Ruleset, and whether the table exists. Set elements are
// returned as the kernel holds them (not merged), so a Ruleset read back equals the one applied; Foreign
// lists whatever masqd would not have written.
func (c *Conn) Read() (_ ruleset.Ruleset, _ bool, err error) {
	defer func() { err = privilege(err) }()
	obs, elements, err := c.observe(true)
	if err != nil || !obs.Present {
		return ruleset.Ruleset{}, obs.Present, err
	}
	return ruleset.Assemble(obs, elements), true, nil
}

// Present reports whether table inet masqd exists. It lists the table only, so it is cheap at any set size.
func (c *Conn) Present() (_ bool, err error) {
	defer func() { err = privilege(err) }()
	nc, err := c.dial(0)
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	if _, err := nc.ListTableOfFamily(ruleset.TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("nftables: list table inet %s: %w", ruleset.TableName, err)
	}
	return true, nil
}

// intervals decodes the kernel's interval-set elements. A set that is not a clean sequence of
// start/end pairs is reported as an error, and its well-formed intervals are still returned.
func intervals(elems []nftables.SetElement) ([]ruleset.Interval, error) {
	slices.SortFunc(elems, func(a, b nftables.SetElement) int {
		ka, _ := netip.AddrFromSlice(a.Key)
		kb, _ := netip.AddrFromSlice(b.Key)
		if c := ka.Compare(kb); c != 0 {
			return c
		}
		// At the same key an end sorts before a start: [a, k) followed by [k, ...).
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []ruleset.Interval
	var bad error
	var open netip.Addr
	for _, e := range elems {
		k, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			bad = fmt.Errorf("element key of %d bytes", len(e.Key))
			continue
		}
		switch {
		case !e.IntervalEnd && !open.IsValid():
			open = k
		case e.IntervalEnd && open.IsValid():
			out = append(out, ruleset.IntervalFrom(open, k.Prev()))
			open = netip.Addr{}
		case e.IntervalEnd && k.IsUnspecified():
			// nft marks the range below the first interval with an end element at address zero.
		default:
			bad = fmt.Errorf("unpaired element %s", k)
		}
	}
	if open.IsValid() {
		out = append(out, ruleset.IntervalFrom(open, ruleset.PrefixInterval(netip.PrefixFrom(open, 0)).Last()))
	}
	return out, bad
}

// Delete removes table inet masqd, and with it everything masqd made in nftables. A missing table is not
// an error.
func (c *Conn) Delete() (err error) {
	defer func() { err = privilege(err) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = nil
	s, err := c.socket()
	if err != nil {
		return err
	}
	b := newBatch(ruleset.TableName)
	if err := b.transaction(ruleset.Transaction{{Kind: ruleset.DeleteTable}}); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := s.commit(b, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: delete table inet %s: %w", ruleset.TableName, err)
	}
	return nil
}

// Counters returns the packets and bytes masqueraded per family, read from the rules' counters. It reads
// only the chain, not the sets, so it is cheap at any set size. A missing table reads as zero.
func (c *Conn) Counters() (v4, v6 ruleset.Counter, err error) {
	defer func() { err = privilege(err) }()
	nc, err := c.dial(0)
	if err != nil {
		return v4, v6, fmt.Errorf("nftables: %w", err)
	}
	table := masqdTable()
	rules, err := nc.GetRules(table, &nftables.Chain{Name: ruleset.ChainName, Table: table})
	if errors.Is(err, unix.ENOENT) {
		return v4, v6, nil
	}
	if err != nil {
		return v4, v6, fmt.Errorf("nftables: list rules of chain %s: %w", ruleset.ChainName, err)
	}
	obs := ruleset.Observed{Present: true, Chain: true}
	for _, r := range rules {
		rule, cnt, ours := decodeRule(r.Exprs)
		obs.Rules = append(obs.Rules, ruleset.ObservedRule{Handle: r.Handle, Ours: ours, Rule: rule, Counter: cnt})
	}
	v4, v6 = ruleset.Assemble(obs, nil).Masqueraded()
	return v4, v6, nil
}
