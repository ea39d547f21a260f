package ruleset

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

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

// The operations of a Plan. Each applies to masqd's table (inet masqd): its sets, its chain, its rules.
type OpKind int

const (
	AddTable       OpKind = iota // create the table (nothing when it exists)
	DeleteTable                  // delete the table and everything in it
	AddSet                       // create set Set (an interval set of its family's addresses)
	DeleteSet                    // delete set Set
	FlushSet                     // remove every element of set Set
	AddElements                  // add Elements to set Set
	DeleteElements               // remove Elements from set Set
	AddChain                     // create masqd's chain: nat, hook postrouting, priority srcnat, policy accept
	DeleteChain                  // delete chain Chain, which is not masqd's
	FlushChain                   // remove every rule of chain Chain
	AddRule                      // append Rule to masqd's chain
	DeleteRule                   // remove the rule of masqd's chain whose kernel handle is Handle
)

// Op is one operation of a kernel transaction, as data.
type Op struct {
	Kind     OpKind
	Set      string     // AddSet, DeleteSet, FlushSet, AddElements, DeleteElements
	Elements []Interval // AddElements, DeleteElements
	Chain    string     // DeleteChain, FlushChain: a chain of the table that is not masqd's
	Rule     Rule       // AddRule
	Handle   uint64     // DeleteRule
}

// Transaction is operations the kernel applies together: packets see all of them or none.
type Transaction []Op

// Plan is what a backend sends to make the kernel hold a Ruleset: its transactions in order (none when
// Change is Unchanged), and what kind of change that is. A Plan is data: it can be printed, compared and
// applied to a Fake as to the kernel.
type Plan struct {
	Change       Change
	Transactions []Transaction
}

// Rule is one rule of masqd's chain: for its family (IPv6 or not), traffic whose destination is not in the
// family's set and not local to the node, then a --to-ports rule (Port) or the catch-all masquerade.
type Rule struct {
	IPv6        bool
	Port        *PortRule // nil for the catch-all rule
	RandomFully bool
	// Sources: the rule first matches the source against the family's sources set (SrcSet).
	Sources bool
	// Egress: the rule matches only traffic leaving through an interface of the set EgressName.
	Egress bool
	// SNAT is the address the rule translates the source to (snat); the zero Addr: masquerade.
	SNAT netip.Addr
}

func (r Rule) equal(o Rule) bool {
	return r.IPv6 == o.IPv6 && r.RandomFully == o.RandomFully && r.Sources == o.Sources &&
		r.Egress == o.Egress && r.SNAT == o.SNAT &&
		(r.Port == nil) == (o.Port == nil) && (r.Port == nil || *r.Port == *o.Port)
}

// Set is the set the rule reads.
func (r Rule) Set() string {
	if r.IPv6 {
		return Set6Name
	}
	return Set4Name
}

// SrcSet is the sources set the rule reads when Sources.
func (r Rule) SrcSet() string {
	if r.IPv6 {
		return Src6Name
	}
	return Src4Name
}

// String is the rule as `nft list` prints it, counter at zero.
func (r Rule) String() string { return r.text(Counter{}) }

// text is the rule as `nft list` prints it, with counter c.
func (r Rule) text(c Counter) string {
	m := r.match()
	if r.Port != nil {
		m += " " + r.Port.head()
	}
	return fmt.Sprintf("%s counter packets %d bytes %d %s", m, c.Packets, c.Bytes, r.verdict())
}

// match is the rule's matches as nft prints them: the source (with Sources), the destination, not local,
// the outgoing interface (with Egress).
func (r Rule) match() string {
	ip := "ip"
	if r.IPv6 {
		ip = "ip6"
	}
	m := ip + " daddr != @" + r.Set() + " fib daddr type != local"
	if r.Sources {
		m = ip + " saddr @" + r.SrcSet() + " " + m
	}
	if r.Egress {
		m += " oifname @" + EgressName
	}
	return m
}

// verdict is the rule's NAT statement as nft prints it: masquerade, or snat to SNAT; with a port rule's
// range, and the random flags.
func (r Rule) verdict() string {
	var b strings.Builder
	switch {
	case r.SNAT.IsValid():
		ip, addr := "ip", r.SNAT.String()
		if r.IPv6 {
			ip = "ip6"
			if r.Port != nil {
				addr = "[" + addr + "]"
			}
		}
		b.WriteString("snat " + ip + " to " + addr)
		if r.Port != nil {
			b.WriteString(":" + r.Port.Range.String())
		}
	default:
		b.WriteString("masquerade")
		if r.Port != nil {
			b.WriteString(" to :" + r.Port.Range.String())
		}
	}
	if r.RandomFully {
		b.WriteString(" random,fully-random")
	}
	return b.String()
}

// Rules is r's chain, rule by rule: for each family its --to-ports rules, then its catch-all rule.
func (r Ruleset) Rules() []Rule {
	ports := PortRules(r.ToPorts)
	var out []Rule
	egress := len(r.Egress) > 0
	family := func(ipv6 bool) {
		snat := r.SNAT4
		if ipv6 {
			snat = r.SNAT6
		}
		for i := range ports {
			out = append(out, Rule{IPv6: ipv6, Port: &ports[i], RandomFully: r.RandomFully, Sources: r.Sources, Egress: egress, SNAT: snat})
		}
		out = append(out, Rule{IPv6: ipv6, RandomFully: r.RandomFully, Sources: r.Sources, Egress: egress, SNAT: snat})
	}
	family(false)
	if r.IPv6 {
		family(true)
	}
	return out
}

// Observed is what a backend knows of the kernel's table inet masqd before it changes it. Listing the
// table's sets, chains and rules is cheap; reading a large set's elements is not (see nft.Conn), so Have
// may be unknown while the rest is.
type Observed struct {
	// Present says whether the table exists; when false the rest is empty.
	Present bool
	// Have is everything the table holds, elements included: remembered from the backend's own last
	// transaction (still true: nobody has committed since), or read. Nil when the elements are not known;
	// the fields below then say what the table holds besides them.
	Have *Ruleset
	// Remembered says Have is the backend's memory of its own last transaction, not what it read.
	Remembered bool
	// Sets are the table's sets. Usable says whether masqd can keep one as its own: it has masqd's name
	// and is an interval set of that family's addresses.
	Sets []ObservedSet
	// Chain says whether masqd's chain is there (by name, type, hook, priority and policy); Others are the
	// table's other chains.
	Chain  bool
	Others []string
	// Rules are the rules of masqd's chain, in order.
	Rules []ObservedRule
}

// ObservedSet is one set of the kernel's table.
type ObservedSet struct {
	Name   string
	Usable bool
}

// ObservedRule is one rule of masqd's chain in the kernel: which of masqd's rules it is (Ours false: none
// of them), its kernel handle, and its counter.
type ObservedRule struct {
	Handle  uint64
	Ours    bool
	Rule    Rule
	Counter Counter
}

// sameShape reports whether only set elements differ between the kernel's table and want.
func sameShape(have, want Ruleset) bool {
	return len(have.Foreign) == 0 && have.IPv6 == want.IPv6 && have.RandomFully == want.RandomFully &&
		slices.Equal(have.ToPorts, want.ToPorts) && have.Sources == want.Sources &&
		(len(have.Egress) > 0) == (len(want.Egress) > 0) && have.SNAT4 == want.SNAT4 && have.SNAT6 == want.SNAT6
}

// PlanFor computes the Plan that makes the kernel, as observed, hold want. It is pure.
//
//   - The table holds want (as far as Have says): nothing, Unchanged.
//   - It holds want's shape with other elements: one transaction removing and adding only the elements that
//     differ, Updated. (Removals first: an added interval may overlap one going away.)
//   - There is no table (a first start, or someone deleted it): one transaction making it whole, Rebuilt.
//     Nothing was masqueraded before, so no old ruleset is kept meanwhile.
//   - A set of masqd's name is of the wrong type: the table is replaced whole in one transaction, Rebuilt.
//   - Otherwise (the shape differs, or the elements are not known): two transactions, so that no rule ever
//     reads a set created in the same transaction (on Linux 6.18 such a rule misses now and then for packets
//     that race the commit; RELIABILITY.md). The first creates the sets that are missing, with their
//     elements; no rule reads them yet. The second empties and refills the sets that were there, keeps the
//     chain's leading rules that are right (and their counters), removes the rest of its rules and every
//     other chain and set, and adds want's remaining rules. Both are atomic for packets. Rebuilt when Have
//     was remembered (the shape is known to have changed), Refreshed when it was read or not known.
func PlanFor(want Ruleset, obs Observed) Plan {
	if obs.Present && obs.Have != nil {
		have := *obs.Have
		if have.SameRules(want) {
			return Plan{Change: Unchanged}
		}
		if sameShape(have, want) {
			var tx Transaction
			tx = appendDelta(tx, Set4Name, have.NonMasq4, want.NonMasq4)
			if want.IPv6 {
				tx = appendDelta(tx, Set6Name, have.NonMasq6, want.NonMasq6)
			}
			if want.Sources {
				tx = appendDelta(tx, Src4Name, have.Src4, want.Src4)
				if want.IPv6 {
					tx = appendDelta(tx, Src6Name, have.Src6, want.Src6)
				}
			}
			if len(want.Egress) > 0 {
				tx = appendDelta(tx, EgressName, ifnameIntervals(have.Egress), ifnameIntervals(want.Egress))
			}
			return Plan{Change: Updated, Transactions: []Transaction{tx}}
		}
	}
	if !obs.Present || slices.ContainsFunc(obs.Sets, func(s ObservedSet) bool { return wantsSet(want, s.Name) && !s.Usable }) {
		return Plan{Change: Rebuilt, Transactions: []Transaction{wholeTable(want)}}
	}

	var create, change Transaction
	exists := map[string]bool{}
	var obsolete []string
	for _, s := range obs.Sets {
		if wantsSet(want, s.Name) {
			exists[s.Name] = true
		} else {
			obsolete = append(obsolete, s.Name)
		}
	}
	for _, s := range want.sets() {
		if exists[s.name] {
			change = append(change, Op{Kind: FlushSet, Set: s.name}, Op{Kind: AddElements, Set: s.name, Elements: s.ivs})
		} else {
			create = append(create, Op{Kind: AddSet, Set: s.name}, Op{Kind: AddElements, Set: s.name, Elements: s.ivs})
		}
	}
	for _, c := range obs.Others {
		change = append(change, Op{Kind: FlushChain, Chain: c})
	}
	rules := want.Rules()
	keep := 0
	for i, r := range obs.Rules {
		if keep == i && i < len(rules) && r.Ours && r.Rule.equal(rules[i]) {
			keep++
			continue
		}
		change = append(change, Op{Kind: DeleteRule, Handle: r.Handle})
	}
	for _, c := range obs.Others { // once no rule of masqd's chain can jump to them
		change = append(change, Op{Kind: DeleteChain, Chain: c})
	}
	if !obs.Chain {
		change = append(change, Op{Kind: AddChain})
	}
	for _, r := range rules[keep:] {
		change = append(change, Op{Kind: AddRule, Rule: r})
	}
	for _, name := range obsolete { // once no rule reads them
		change = append(change, Op{Kind: DeleteSet, Set: name})
	}
	p := Plan{Change: Refreshed}
	if obs.Remembered {
		p.Change = Rebuilt
	}
	if len(create) > 0 {
		p.Transactions = append(p.Transactions, create)
	}
	p.Transactions = append(p.Transactions, change)
	return p
}

// namedSet is one of a Ruleset's sets.
type namedSet struct {
	name string
	ivs  []Interval
}

// sets are r's sets, in the order nft lists them once created in this order: the non-masquerade sets
// (IPv4's, and IPv6's when r has IPv6), then with Sources the sources sets. nft lists sets in the order they
// were created, so one transition lists them otherwise: turning IPv6 on while Sources is on creates
// nonmasq6 and sources6 after sources4 (the rules and elements are right; only nft's listing differs from
// String until the table is next rebuilt).
func (r Ruleset) sets() []namedSet {
	s := []namedSet{{Set4Name, r.NonMasq4}}
	if r.IPv6 {
		s = append(s, namedSet{Set6Name, r.NonMasq6})
	}
	if r.Sources {
		s = append(s, namedSet{Src4Name, r.Src4})
		if r.IPv6 {
			s = append(s, namedSet{Src6Name, r.Src6})
		}
	}
	if len(r.Egress) > 0 {
		s = append(s, namedSet{EgressName, ifnameIntervals(r.Egress)})
	}
	return s
}

// wantsSet reports whether name is one of want's sets.
func wantsSet(want Ruleset, name string) bool {
	return slices.ContainsFunc(want.sets(), func(s namedSet) bool { return s.name == name })
}

// IsIPv6Set reports whether name is the name of one of masqd's IPv6 sets.
func IsIPv6Set(name string) bool { return name == Set6Name || name == Src6Name }

// wholeTable is the transaction that makes the table want, replacing any table of its name: add (nothing
// when it exists), delete, add again, then the sets with their elements, the chain and its rules.
func wholeTable(want Ruleset) Transaction {
	tx := Transaction{{Kind: AddTable}, {Kind: DeleteTable}, {Kind: AddTable}}
	for _, s := range want.sets() {
		tx = append(tx, Op{Kind: AddSet, Set: s.name}, Op{Kind: AddElements, Set: s.name, Elements: s.ivs})
	}
	tx = append(tx, Op{Kind: AddChain})
	for _, r := range want.Rules() {
		tx = append(tx, Op{Kind: AddRule, Rule: r})
	}
	return tx
}

// appendDelta appends the element changes that turn one set's intervals from into to: deletions first, as
// an added interval may overlap one that is going away.
func appendDelta(tx Transaction, set string, from, to []Interval) Transaction {
	del, add := DiffIntervals(from, to)
	if len(del) > 0 {
		tx = append(tx, Op{Kind: DeleteElements, Set: set, Elements: del})
	}
	if len(add) > 0 {
		tx = append(tx, Op{Kind: AddElements, Set: set, Elements: add})
	}
	return tx
}

// String renders the plan in `nft` syntax, one operation per line, each transaction after a "# transaction
// N" line; an Unchanged plan is "# unchanged". Elements are listed in full.
func (p Plan) String() string {
	var b strings.Builder
	if len(p.Transactions) == 0 {
		return "# " + p.Change.String() + "\n"
	}
	for i, tx := range p.Transactions {
		fmt.Fprintf(&b, "# transaction %d of %d (%s)\n", i+1, len(p.Transactions), p.Change)
		for _, op := range tx {
			b.WriteString(op.String())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// String is the operation as an nft command.
func (o Op) String() string {
	t := "inet " + TableName
	elems := func() string {
		s := make([]string, len(o.Elements))
		for i, iv := range o.Elements {
			s[i] = elementText(o.Set, iv)
		}
		return "{ " + strings.Join(s, ", ") + " }"
	}
	switch o.Kind {
	case AddTable:
		return "add table " + t
	case DeleteTable:
		return "delete table " + t
	case AddSet:
		typ, _ := setType(o.Set)
		return fmt.Sprintf("add set %s %s { type %s; flags interval; }", t, o.Set, typ)
	case DeleteSet:
		return fmt.Sprintf("delete set %s %s", t, o.Set)
	case FlushSet:
		return fmt.Sprintf("flush set %s %s", t, o.Set)
	case AddElements:
		return fmt.Sprintf("add element %s %s %s", t, o.Set, elems())
	case DeleteElements:
		return fmt.Sprintf("delete element %s %s %s", t, o.Set, elems())
	case AddChain:
		return fmt.Sprintf("add chain %s %s { type nat hook postrouting priority srcnat; policy accept; }", t, ChainName)
	case DeleteChain:
		return fmt.Sprintf("delete chain %s %s", t, o.Chain)
	case FlushChain:
		return fmt.Sprintf("flush chain %s %s", t, o.Chain)
	case AddRule:
		return fmt.Sprintf("add rule %s %s %s", t, ChainName, o.Rule)
	case DeleteRule:
		return fmt.Sprintf("delete rule %s %s handle %d", t, ChainName, o.Handle)
	}
	return fmt.Sprintf("# operation %d", o.Kind)
}
