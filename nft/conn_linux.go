package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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
	last    *Ruleset // the kernel's table after our last commit; nil when unknown
	lastGen uint32   // the generation at which last was true
	sock    *nlSock  // Apply's socket; nil until an Apply opens it

	monMu    sync.Mutex
	monitors map[*netlink.Conn]bool // the sockets of the Monitors running on this Conn
}

// NewConn returns a Conn for the network namespace behind netnsFD, or the caller's namespace when it is 0.
func NewConn(netnsFD int) *Conn { return &Conn{netns: netnsFD} }

// Change says what an Apply sent to the kernel.
type Change int

const (
	Unchanged Change = iota // nothing was sent: the kernel already held the ruleset
	Updated                 // set elements were added and removed in place
	Rebuilt                 // the table was (re)created whole, or its rules or sets changed shape
	// Refreshed means the sets were emptied and refilled, and the rules set right, because what the
	// kernel held was not known: it may or may not have differed.
	Refreshed
)

func (c Change) String() string {
	return [...]string{"unchanged", "updated", "rebuilt", "refreshed"}[c]
}

// MarshalText makes logs and JSON say the name, not the number.
func (c Change) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

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
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// Apply makes the kernel hold want, in one transaction: packets see the old ruleset or the new one, never a
// mix, and the table is never missing. When the kernel's table already has the right shape only the set
// elements that differ are sent; when it already equals want nothing is sent.
func (c *Conn) Apply(want Ruleset) (Change, error) {
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
func (c *Conn) applyUnheard(want Ruleset) (Change, error) {
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
		return Unchanged, err
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
func privilege(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: masqd needs CAP_NET_ADMIN in this network namespace (run as root or grant the capability)", err)
	}
	return err
}

// Forget drops what Conn remembers of the kernel, so that the next Apply reads the table first. Call it when
// something else may have changed the table (the drift monitor saw a foreign change).
func (c *Conn) Forget() {
	c.mu.Lock()
	c.last = nil
	c.mu.Unlock()
}

func (c *Conn) apply(want Ruleset) (Change, error) {
	s, err := c.socket()
	if err != nil {
		return Unchanged, err
	}
	gen, err := s.generation()
	if err != nil {
		return Unchanged, err
	}
	known := c.last != nil && c.lastGen == gen
	if known && c.last.SameRules(want) {
		return Unchanged, nil
	}
	tx, err := c.begin(s, want.RandomFully)
	if err != nil {
		return Unchanged, err
	}
	// Every batch is sent with the generation it was computed at: the kernel refuses it if anyone has
	// committed since (and Apply tries again, knowing nothing), and a batch it takes made the next one.
	tx.genID = gen
	switch {
	case known && sameShape(*c.last, want):
		queueDelta(tx, *c.last, want)
		if gen, err = tx.commit(); err != nil {
			return Unchanged, fmt.Errorf("nftables: apply table inet %s (%s): %w", TableName, Updated, err)
		}
		c.remember(want, gen)
		return Updated, nil
	case known:
		gen, err = c.rebuild(tx, true, want)
		if err != nil {
			return Unchanged, err
		}
		c.remember(want, gen)
		return Rebuilt, nil
	}
	present, err := s.tableExists()
	if err != nil {
		return Unchanged, err
	}
	if present && len(want.NonMasq4)+len(want.NonMasq6) <= readLimit {
		// A small table is read, so that what is already right (a restart) sends nothing.
		have, ok, err := c.Read()
		switch {
		case err != nil:
			return Unchanged, err
		case ok && have.SameRules(want):
			c.remember(want, gen)
			return Unchanged, nil
		case ok && sameShape(have, want):
			queueDelta(tx, have, want)
			if gen, err = tx.commit(); err != nil {
				return Unchanged, fmt.Errorf("nftables: apply table inet %s (%s): %w", TableName, Updated, err)
			}
			c.remember(want, gen)
			return Updated, nil
		}
		present = ok
	}
	if gen, err = c.rebuild(tx, present, want); err != nil {
		return Unchanged, err
	}
	c.remember(want, gen)
	if !present {
		return Rebuilt, nil
	}
	return Refreshed, nil
}

// readLimit is the most intervals for which Apply reads the table it knows nothing of, rather than write
// the sets whole: reading 10,000 intervals costs the kernel about 10 ms, and the cost grows with the square
// of the set (a dump restarts its walk of the set for every message).
const readLimit = 10_000

// InSync reports whether the kernel holds want, as far as Conn knows without reading the table: its last
// commit (which the kernel acknowledged) left want there, and nobody has committed since, or only commits
// that Advance was told left masqd's table alone. false means "not known", not "different".
func (c *Conn) InSync(want Ruleset) (bool, error) {
	gen, err := c.generation()
	if err != nil {
		return false, privilege(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last != nil && c.lastGen == gen && c.last.SameRules(want), nil
}

func (c *Conn) remember(r Ruleset, gen uint32) {
	r.Counter4, r.Counter6 = Counter{}, Counter{}
	c.last, c.lastGen = &r, gen
}

// sameShape reports whether only set elements differ between the kernel's table and want.
func sameShape(have, want Ruleset) bool {
	return len(have.Foreign) == 0 && have.IPv6 == want.IPv6 && have.RandomFully == want.RandomFully &&
		slices.Equal(have.ToPorts, want.ToPorts)
}

func sets(ipv6 bool) (s4, s6 *nftables.Set) {
	table := masqdTable()
	s4 = &nftables.Set{Table: table, Name: Set4Name, Interval: true, KeyType: nftables.TypeIPAddr}
	if ipv6 {
		s6 = &nftables.Set{Table: table, Name: Set6Name, Interval: true, KeyType: nftables.TypeIP6Addr}
	}
	return s4, s6
}

// rebuild makes the table hold want whatever it held before, reading only its sets' and rules' descriptions
// (never the elements), in two transactions, so that no rule ever reads a set created in the same
// transaction: on Linux 6.18 such a rule misses now and then for packets that race the commit
// (RELIABILITY.md, "Kernel: which changes are atomic for packets"). The first transaction creates the table
// and the sets that are missing, with their elements; no rule reads them yet, so packets see no change. The
// second empties and refills the sets that were there, replaces the rules that differ (keeping the leading
// ones that are right, and their counters) and removes whatever in the table is not masqd's. Both kinds of
// change are atomic for packets. When there is no table (masqd's first start, or someone deleted it) it is
// made in one transaction: nothing was masqueraded before, so there is no old ruleset to keep. Only when a
// set of masqd's name has the wrong type is a table that is there replaced whole, in one transaction.
//
// It returns the ruleset generation of its last commit.
func (c *Conn) rebuild(tx *txn, present bool, want Ruleset) (uint32, error) {
	if !present {
		return c.replaceTable(tx, want)
	}
	nc := tx.nc
	table := masqdTable()
	kernelSets, err := nc.GetSets(table)
	if err != nil {
		return 0, fmt.Errorf("nftables: list sets of table inet %s: %w", TableName, err)
	}
	s4, s6 := sets(want.IPv6)
	wants := map[string][]Interval{s4.Name: want.NonMasq4}
	if s6 != nil {
		wants[s6.Name] = want.NonMasq6
	}
	exists := map[string]bool{}
	var obsolete []string
	for _, k := range kernelSets {
		_, ok := wants[k.Name]
		switch {
		case !ok:
			obsolete = append(obsolete, k.Name)
		case !k.Interval || k.IsMap || k.KeyType.Name != ourSet(k.Name, s4, s6).KeyType.Name:
			return c.replaceTable(tx, want)
		default:
			exists[k.Name] = true
		}
	}

	if len(exists) < len(wants) {
		for _, s := range []*nftables.Set{s4, s6} {
			if s != nil && !exists[s.Name] {
				if err := addSet(tx, s, wants[s.Name]); err != nil {
					return 0, err
				}
			}
		}
		if _, err := tx.commit(); err != nil {
			return 0, fmt.Errorf("nftables: apply table inet %s (new sets): %w", TableName, err)
		}
	}

	for name := range exists {
		s := ourSet(name, s4, s6)
		nc.FlushSet(s)
		tx.addElements(s, wants[name])
	}
	if err := queueChain(nc, want, s4, s6); err != nil {
		return 0, err
	}
	for _, name := range obsolete {
		nc.DelSet(&nftables.Set{Table: table, Name: name})
	}
	gen, err := tx.commit()
	if err != nil {
		return 0, fmt.Errorf("nftables: apply table inet %s (rules): %w", TableName, err)
	}
	return gen, nil
}

func ourSet(name string, s4, s6 *nftables.Set) *nftables.Set {
	if name == s4.Name {
		return s4
	}
	return s6
}

// isMasqdChain says whether ch is masqd's chain as masqd makes it.
func isMasqdChain(ch *nftables.Chain) bool {
	return ch.Name == ChainName && ch.Type == nftables.ChainTypeNAT && ch.Hooknum != nil &&
		*ch.Hooknum == *nftables.ChainHookPostrouting && ch.Priority != nil &&
		*ch.Priority == *nftables.ChainPriorityNATSource &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}

// queueChain queues what makes the chains of table inet masqd exactly masqd's chain with want's rules. The
// chain's rules are kept as long as they match want's in order; the rest are deleted and want's remaining
// rules added. Other chains (and a chain of masqd's name with the wrong hook) are emptied first and deleted
// once no rule of masqd's chain can jump to them.
func queueChain(nc *nftables.Conn, want Ruleset, s4, s6 *nftables.Set) error {
	table := masqdTable()
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables: list chains: %w", err)
	}
	var chain *nftables.Chain
	var others []*nftables.Chain
	for _, ch := range chains {
		switch {
		case ch.Table.Name != TableName:
		case isMasqdChain(ch):
			chain = ch
		default:
			others = append(others, &nftables.Chain{Name: ch.Name, Table: table})
			nc.FlushChain(others[len(others)-1])
		}
	}
	rules := chainRules(want, s4, s6)
	keep := 0
	if chain != nil {
		kernel, err := nc.GetRules(table, chain)
		if err != nil {
			return fmt.Errorf("nftables: list rules of chain %s: %w", ChainName, err)
		}
		for i, r := range kernel {
			if keep == i && i < len(rules) && sameRule(r.Exprs, rules[i]) {
				keep++
				continue
			}
			if err := nc.DelRule(&nftables.Rule{Table: table, Chain: chain, Handle: r.Handle}); err != nil {
				return fmt.Errorf("nftables: delete rule %d of chain %s: %w", r.Handle, ChainName, err)
			}
		}
	}
	for _, ch := range others {
		nc.DelChain(ch)
	}
	if chain == nil {
		chain = addChain(nc)
	}
	for _, exprs := range rules[keep:] {
		nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	return nil
}

func addChain(nc *nftables.Conn) *nftables.Chain {
	return nc.AddChain(&nftables.Chain{
		Name:     ChainName,
		Table:    masqdTable(),
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   ptr(nftables.ChainPolicyAccept),
	})
}

// replaceTable makes or replaces the whole table in one transaction, and returns its generation.
func (c *Conn) replaceTable(tx *txn, want Ruleset) (uint32, error) {
	if err := queueTable(tx, want); err != nil {
		return 0, err
	}
	gen, err := tx.commit()
	if err != nil {
		return 0, fmt.Errorf("nftables: replace table inet %s: %w", TableName, err)
	}
	return gen, nil
}

// queueTable queues the whole table, replacing any table of that name: add (a no-op if it exists), delete,
// add again, all inside the same batch.
func queueTable(tx *txn, want Ruleset) error {
	nc := tx.nc
	table := masqdTable()
	nc.AddTable(table)
	nc.DelTable(table)
	nc.AddTable(table)
	s4, s6 := sets(want.IPv6)
	if err := addSet(tx, s4, want.NonMasq4); err != nil {
		return err
	}
	if s6 != nil {
		if err := addSet(tx, s6, want.NonMasq6); err != nil {
			return err
		}
	}
	chain := addChain(nc)
	for _, exprs := range chainRules(want, s4, s6) {
		nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	return nil
}

func addSet(tx *txn, s *nftables.Set, ivs []Interval) error {
	if err := tx.nc.AddSet(s, nil); err != nil { // gives s its ID in the batch
		return fmt.Errorf("nftables: add set %s: %w", s.Name, err)
	}
	tx.addElements(s, ivs)
	return nil
}

// queueDelta queues the element changes that turn have's sets into want's.
func queueDelta(tx *txn, have, want Ruleset) {
	s4, s6 := sets(want.IPv6)
	queueElementDelta(tx, s4, have.NonMasq4, want.NonMasq4)
	if s6 != nil {
		queueElementDelta(tx, s6, have.NonMasq6, want.NonMasq6)
	}
}

// queueElementDelta queues the element changes that turn one set's intervals from into to: deletions
// first, as an added interval may overlap one that is going away.
func queueElementDelta(tx *txn, s *nftables.Set, from, to []Interval) {
	del, add := DiffIntervals(from, to)
	tx.deleteElements(s, del)
	tx.addElements(s, add)
}

// chainRules is want's chain, rule by rule: for each family its --to-ports rules (ToPortsRules behind
// familyMatch), then its catch-all rule. s4 and s6 are the sets the rules read; nil when only comparing.
func chainRules(want Ruleset, s4, s6 *nftables.Set) [][]expr.Any {
	ports := ToPortsRules(want.ToPorts, want.RandomFully)
	var out [][]expr.Any
	family := func(nfproto byte, s *nftables.Set) {
		for _, p := range ports {
			out = append(out, slices.Concat(familyMatch(nfproto, s), p.Exprs))
		}
		out = append(out, ruleExprs(nfproto, s, want.RandomFully))
	}
	family(unix.NFPROTO_IPV4, s4)
	if want.IPv6 {
		family(unix.NFPROTO_IPV6, s6)
	}
	return out
}

// familyMatch is what every rule of masqd's chain starts with: ip[6] daddr != @set fib daddr type != local.
func familyMatch(nfproto byte, s *nftables.Set) []expr.Any {
	off, n := uint32(16), uint32(4) // IPv4 daddr
	name := Set4Name
	if nfproto == unix.NFPROTO_IPV6 {
		off, n, name = 24, 16, Set6Name
	}
	var setID uint32
	if s != nil {
		setID = s.ID
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: name, SetID: setID, Invert: true},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// ruleExprs is one family's catch-all rule: familyMatch, then counter masquerade.
func ruleExprs(nfproto byte, s *nftables.Set, randomFully bool) []expr.Any {
	return append(familyMatch(nfproto, s), &expr.Counter{}, &expr.Masq{Random: randomFully, FullyRandom: randomFully})
}

// sameRule reports whether the kernel's rule does what want does, counters aside. Masquerades are compared
// field by field: google/nftables encodes one with a port range without its flags, so their encodings would
// not tell random,fully-random from plain. The port rules' byteorder expressions are left out of the
// comparison: google/nftables v0.3.0 does not decode byteorder and drops it from the rules it reads (nft
// lists it, and the golden tests compare nft's listing).
func sameRule(kernel, want []expr.Any) bool {
	isByteorder := func(e expr.Any) bool { _, ok := e.(*expr.Byteorder); return ok }
	kernel = slices.DeleteFunc(slices.Clone(kernel), isByteorder)
	want = slices.DeleteFunc(slices.Clone(want), isByteorder)
	if len(kernel) != len(want) {
		return false
	}
	for i := range kernel {
		switch k := kernel[i].(type) {
		case *expr.Counter:
			if _, ok := want[i].(*expr.Counter); !ok {
				return false
			}
		case *expr.Masq:
			w, ok := want[i].(*expr.Masq)
			if !ok || k.ToPorts != w.ToPorts || k.RegProtoMin != w.RegProtoMin || k.RegProtoMax != w.RegProtoMax ||
				k.Random != w.Random || k.FullyRandom != w.FullyRandom || k.Persistent != w.Persistent {
				return false
			}
		default:
			if !sameExprs(kernel[i:i+1], want[i:i+1]) {
				return false
			}
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// Read returns the kernel's table inet masqd as a Ruleset, and whether the table exists. Set elements are
// returned as the kernel holds them (not merged), so a Ruleset read back equals the one applied.
func (c *Conn) Read() (_ Ruleset, _ bool, err error) {
	defer func() { err = privilege(err) }()
	nc, err := c.dial(0)
	if err != nil {
		return Ruleset{}, false, fmt.Errorf("nftables: %w", err)
	}
	if _, err := nc.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Ruleset{}, false, nil
		}
		return Ruleset{}, false, fmt.Errorf("nftables: list table inet %s: %w", TableName, err)
	}
	var r Ruleset
	table := masqdTable()
	foreign := func(format string, args ...any) { r.Foreign = append(r.Foreign, fmt.Sprintf(format, args...)) }

	kernelSets, err := nc.GetSets(table)
	if err != nil {
		return Ruleset{}, true, fmt.Errorf("nftables: list sets of table inet %s: %w", TableName, err)
	}
	var have4, have6 bool
	for _, s := range kernelSets {
		var dst *[]Interval
		switch {
		case s.Name == Set4Name && s.Interval && !s.IsMap && s.KeyType.Name == nftables.TypeIPAddr.Name:
			dst, have4 = &r.NonMasq4, true
		case s.Name == Set6Name && s.Interval && !s.IsMap && s.KeyType.Name == nftables.TypeIP6Addr.Name:
			dst, have6 = &r.NonMasq6, true
		default:
			foreign("set %s", s.Name)
			continue
		}
		elems, err := c.dumpElements(s.Name)
		if err != nil {
			return Ruleset{}, true, fmt.Errorf("nftables: list elements of set %s: %w", s.Name, err)
		}
		ivs, err := intervals(elems)
		if err != nil {
			foreign("set %s: %v", s.Name, err)
		}
		*dst = ivs
	}
	if !have4 {
		foreign("set %s missing", Set4Name)
	}

	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return Ruleset{}, true, fmt.Errorf("nftables: list chains: %w", err)
	}
	var chain *nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		if isMasqdChain(ch) {
			chain = ch
			continue
		}
		foreign("chain %s", ch.Name)
	}
	if chain == nil {
		foreign("chain %s missing", ChainName)
		return r, true, nil
	}
	rules, err := nc.GetRules(table, chain)
	if err != nil {
		return Ruleset{}, true, fmt.Errorf("nftables: list rules of chain %s: %w", ChainName, err)
	}
	for _, f := range parseChain(&r, rules) {
		foreign("%s", f)
	}
	if r.IPv6 != have6 {
		foreign("IPv6 set and rules do not match (set present: %t, rules present: %t)", have6, r.IPv6)
	}
	return r, true, nil
}

// parseChain reads masqd's chain into r: the shape its rules say masqd asked for (IPv6, RandomFully,
// ToPorts), then every rule checked against the chain that shape gives, and the counters of the rules that
// match. It returns what does not match.
func parseChain(r *Ruleset, rules []*nftables.Rule) (foreign []string) {
	catchAll4 := slices.IndexFunc(rules, func(rule *nftables.Rule) bool {
		fam, _, ok := parseCatchAll(rule.Exprs)
		return ok && fam == unix.NFPROTO_IPV4
	})
	if catchAll4 < 0 {
		foreign = append(foreign, "IPv4 rule missing")
	} else {
		_, r.RandomFully, _ = parseCatchAll(rules[catchAll4].Exprs)
		for _, rule := range rules[:catchAll4] {
			if p, ok := parsePortRule(rule.Exprs); ok {
				r.ToPorts = append(r.ToPorts, p)
			}
		}
	}
	r.IPv6 = slices.ContainsFunc(rules, func(rule *nftables.Rule) bool {
		fam, _, ok := parseCatchAll(rule.Exprs)
		return ok && fam == unix.NFPROTO_IPV6
	})
	want := chainRules(*r, nil, nil)
	perFamily := len(want)
	if r.IPv6 {
		perFamily /= 2
	}
	for i, rule := range rules {
		if i >= len(want) || !sameRule(rule.Exprs, want[i]) {
			foreign = append(foreign, fmt.Sprintf("rule %d (handle %d) in chain %s", i, rule.Handle, ChainName))
			continue
		}
		cnt := counterOf(rule.Exprs)
		switch j := i % perFamily; {
		case i < perFamily && j == perFamily-1:
			r.Counter4 = cnt
		case i < perFamily:
			r.PortCounters4 = append(r.PortCounters4, cnt)
		case j == perFamily-1:
			r.Counter6 = cnt
		default:
			r.PortCounters6 = append(r.PortCounters6, cnt)
		}
	}
	if len(rules) < len(want) {
		foreign = append(foreign, fmt.Sprintf("%d of the %d rules of chain %s missing", len(want)-len(rules), len(want), ChainName))
	}
	return foreign
}

// parseCatchAll recognises masqd's catch-all rule and returns its family and masquerade flags.
func parseCatchAll(exprs []expr.Any) (nfproto byte, randomFully bool, ok bool) {
	if len(exprs) != 8 {
		return 0, false, false
	}
	c, isCmp := exprs[1].(*expr.Cmp)
	m, isMasq := exprs[7].(*expr.Masq)
	if !isCmp || !isMasq || len(c.Data) != 1 || m.Random != m.FullyRandom {
		return 0, false, false
	}
	nfproto = c.Data[0]
	if nfproto != unix.NFPROTO_IPV4 && nfproto != unix.NFPROTO_IPV6 || !sameRule(exprs, ruleExprs(nfproto, nil, m.Random)) {
		return 0, false, false
	}
	return nfproto, m.Random, true
}

// parsePortRule returns the port range of an IPv4 TCP rule of ToPortsRules: the ranges in the order of these
// rules are --to-ports. Whether the rule is exactly right is for sameRule to say.
func parsePortRule(exprs []expr.Any) (PortRange, bool) {
	head := familyMatch(unix.NFPROTO_IPV4, nil)
	if len(exprs) < len(head)+5 || !sameExprs(exprs[:len(head)], head) {
		return PortRange{}, false
	}
	if c, ok := exprs[len(head)+1].(*expr.Cmp); !ok || !slices.Equal(c.Data, []byte{unix.IPPROTO_TCP}) {
		return PortRange{}, false
	}
	var p PortRange
	for _, e := range exprs[len(head):] {
		if imm, ok := e.(*expr.Immediate); ok && len(imm.Data) == 2 {
			switch imm.Register {
			case 1:
				p.First = binaryutil.BigEndian.Uint16(imm.Data)
				p.Last = p.First
			case 2:
				p.Last = binaryutil.BigEndian.Uint16(imm.Data)
			}
		}
	}
	return p, p.First != 0
}

// counterOf is a rule's counter.
func counterOf(exprs []expr.Any) Counter {
	for _, e := range exprs {
		if k, ok := e.(*expr.Counter); ok {
			return Counter{Packets: k.Packets, Bytes: k.Bytes}
		}
	}
	return Counter{}
}

// sameExprs compares expressions by their netlink encoding, which is what the kernel runs.
func sameExprs(a, b []expr.Any) bool {
	for i := range a {
		ea, err1 := expr.Marshal(unix.NFPROTO_INET, a[i])
		eb, err2 := expr.Marshal(unix.NFPROTO_INET, b[i])
		if err1 != nil || err2 != nil || !reflect.DeepEqual(ea, eb) {
			return false
		}
	}
	return true
}

// intervals decodes the kernel's interval-set elements. A set that is not a clean sequence of
// start/end pairs is reported as an error, and its well-formed intervals are still returned.
func intervals(elems []nftables.SetElement) ([]Interval, error) {
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
	var out []Interval
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
			out = append(out, IntervalFrom(open, k.Prev()))
			open = netip.Addr{}
		case e.IntervalEnd && k.IsUnspecified():
			// nft marks the range below the first interval with an end element at address zero.
		default:
			bad = fmt.Errorf("unpaired element %s", k)
		}
	}
	if open.IsValid() {
		out = append(out, IntervalFrom(open, PrefixInterval(netip.PrefixFrom(open, 0)).Last()))
	}
	return out, bad
}

// Delete removes table inet masqd, and with it everything masqd made in nftables. A missing table is not
// an error.
func (c *Conn) Delete() (err error) {
	defer func() { err = privilege(err) }()
	nc, err := c.dial(0)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	nc.DelTable(masqdTable())
	if err := nc.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: delete table inet %s: %w", TableName, err)
	}
	return nil
}

// Counters returns the packets and bytes masqueraded per family, read from the rules' counters. It reads
// only the chain, not the sets, so it is cheap at any set size. A missing table reads as zero.
func (c *Conn) Counters() (v4, v6 Counter, err error) {
	defer func() { err = privilege(err) }()
	nc, err := c.dial(0)
	if err != nil {
		return v4, v6, fmt.Errorf("nftables: %w", err)
	}
	table := masqdTable()
	rules, err := nc.GetRules(table, &nftables.Chain{Name: ChainName, Table: table})
	if errors.Is(err, unix.ENOENT) {
		return v4, v6, nil
	}
	if err != nil {
		return v4, v6, fmt.Errorf("nftables: list rules of chain %s: %w", ChainName, err)
	}
	var r Ruleset
	parseChain(&r, rules)
	v4, v6 = r.Masqueraded()
	return v4, v6, nil
}
