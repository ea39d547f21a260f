package ruleset

import (
	"fmt"
	"slices"
	"strings"
)

// Fake is an in-memory kernel holding table inet masqd, for tests that need no packets: it applies Plans as
// the kernel applies transactions (all of a transaction or none of it, refusing what the kernel refuses:
// elements that overlap or are missing, a rule without its chain), records them, and prints the table as
// `nft list table inet masqd` does. As a backend it remembers what its own Apply left, and reads the table
// after someone else's change (Tamper), as nft.Conn does with a small table. The kernel tests show that nft.Conn ends where a Fake given the same Rulesets does. The zero Fake
// holds no table. It is not safe for concurrent use.
type Fake struct {
	table fakeTable
	// tampered says someone else changed the table since the Fake's own last Apply: what it holds is then
	// read, not remembered, as nft.Conn reads a small table after a commit it did not make.
	tampered bool
	// Plans are the plans Apply computed, in order, Unchanged ones included.
	Plans []Plan
}

type fakeTable struct {
	present bool
	sets    map[string][]Interval // by name, sorted
	usable  map[string]bool
	chain   bool
	others  []string
	rules   []ObservedRule
	handle  uint64 // the last rule handle given
}

// Apply makes the Fake hold want, as a backend does: it observes the table, plans, and applies the plan.
func (f *Fake) Apply(want Ruleset) (Change, error) {
	obs := f.Observe()
	obs.Remembered = obs.Present && !f.tampered
	p := PlanFor(want, obs)
	f.Plans = append(f.Plans, p)
	if err := f.Execute(p); err != nil {
		return Unchanged, err
	}
	f.tampered = false
	return p.Change, nil
}

// Observe is what the Fake holds, as a backend that knows it (Have set when the table is present).
func (f *Fake) Observe() Observed {
	t := &f.table
	if !t.present {
		return Observed{}
	}
	obs := Observed{Present: true, Chain: t.chain, Others: slices.Clone(t.others), Rules: slices.Clone(t.rules)}
	for _, name := range t.setNames() {
		obs.Sets = append(obs.Sets, ObservedSet{Name: name, Usable: t.usable[name]})
	}
	have := Assemble(obs, t.sets)
	obs.Have = &have
	return obs
}

// Read is the table as nft.Conn.Read gives it: the Ruleset, and whether the table exists.
func (f *Fake) Read() (Ruleset, bool) {
	obs := f.Observe()
	if !obs.Present {
		return Ruleset{}, false
	}
	return *obs.Have, true
}

// Execute applies p's transactions in order; a transaction that fails changes nothing, and stops p.
func (f *Fake) Execute(p Plan) error {
	for i, tx := range p.Transactions {
		t := f.table.clone()
		for _, op := range tx {
			if err := t.apply(op); err != nil {
				return fmt.Errorf("fake kernel: transaction %d: %s: %w", i+1, op, err)
			}
		}
		f.table = t
	}
	return nil
}

// Tamper applies ops as someone else's transaction would: a test's stand-in for `nft` commands.
func (f *Fake) Tamper(ops ...Op) error {
	f.tampered = true
	return f.Execute(Plan{Transactions: []Transaction{ops}})
}

// AddForeignSet creates a set masqd cannot use as its own (a map, say, or a set of another type) under
// name, as someone else might.
func (f *Fake) AddForeignSet(name string) {
	t := &f.table
	t.sets[name], t.usable[name] = nil, false
	f.tampered = true
}

// Dump is the table as `nft list table inet masqd` prints it, counters at zero; "" when there is none.
func (f *Fake) Dump() string {
	t := &f.table
	if !t.present {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, name := range t.setNames() {
		if i > 0 {
			b.WriteString("\n")
		}
		typ, perLine := setType(name)
		writeSet(&b, name, typ, t.sets[name], perLine)
	}
	if t.chain {
		fmt.Fprintf(&b, "\n\tchain %s {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n", ChainName)
		for _, r := range t.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.Rule)
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.others {
		fmt.Fprintf(&b, "\n\tchain %s {\n\t}\n", c)
	}
	b.WriteString("}\n")
	return b.String()
}

// setNames are the table's sets in the order nft lists them: by name, which puts nonmasq4 first.
func (t *fakeTable) setNames() []string {
	names := make([]string, 0, len(t.sets))
	for n := range t.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (t fakeTable) clone() fakeTable {
	c := t
	c.sets, c.usable = map[string][]Interval{}, map[string]bool{}
	for n, ivs := range t.sets {
		c.sets[n], c.usable[n] = slices.Clone(ivs), t.usable[n]
	}
	c.others, c.rules = slices.Clone(t.others), slices.Clone(t.rules)
	return c
}

var (
	errNoTable = fmt.Errorf("no such table (ENOENT)")
	errNoSet   = fmt.Errorf("no such set (ENOENT)")
	errNoChain = fmt.Errorf("no such chain (ENOENT)")
)

// apply is one operation, as the kernel checks it.
func (t *fakeTable) apply(op Op) error {
	if op.Kind != AddTable && !t.present {
		return errNoTable
	}
	switch op.Kind {
	case AddTable:
		if !t.present {
			*t = fakeTable{present: true, sets: map[string][]Interval{}, usable: map[string]bool{}, handle: t.handle}
		}
	case DeleteTable:
		*t = fakeTable{handle: t.handle}
	case AddSet:
		if _, ok := t.sets[op.Set]; !ok {
			t.sets[op.Set], t.usable[op.Set] = nil, true
		}
	case DeleteSet:
		if _, ok := t.sets[op.Set]; !ok {
			return errNoSet
		}
		delete(t.sets, op.Set)
		delete(t.usable, op.Set)
	case FlushSet:
		if _, ok := t.sets[op.Set]; !ok {
			return errNoSet
		}
		t.sets[op.Set] = nil
	case AddElements, DeleteElements:
		ivs, ok := t.sets[op.Set]
		if !ok {
			return errNoSet
		}
		for _, iv := range op.Elements {
			i, found := slices.BinarySearchFunc(ivs, iv, func(a, b Interval) int { return a.compare(b) })
			switch {
			case op.Kind == DeleteElements && !found:
				return fmt.Errorf("element %s is not in set %s (ENOENT)", iv, op.Set)
			case op.Kind == DeleteElements:
				ivs = slices.Delete(ivs, i, i+1)
			case found || i > 0 && !ivs[i-1].last.less(iv.first) || i < len(ivs) && !iv.last.less(ivs[i].first):
				return fmt.Errorf("element %s overlaps set %s (EEXIST)", iv, op.Set)
			default:
				ivs = slices.Insert(ivs, i, iv)
			}
		}
		t.sets[op.Set] = ivs
	case AddChain:
		t.chain = true
	case DeleteChain:
		i := slices.Index(t.others, op.Chain)
		if i < 0 {
			return errNoChain
		}
		t.others = slices.Delete(t.others, i, i+1)
	case FlushChain:
		switch {
		case op.Chain == ChainName && t.chain:
			t.rules = nil
		case !slices.Contains(t.others, op.Chain):
			return errNoChain
		}
	case AddRule:
		if !t.chain {
			return errNoChain
		}
		if _, ok := t.sets[op.Rule.Set()]; !ok {
			return errNoSet
		}
		if _, ok := t.sets[op.Rule.SrcSet()]; op.Rule.Sources && !ok {
			return errNoSet
		}
		if _, ok := t.sets[EgressName]; op.Rule.Egress && !ok {
			return errNoSet
		}
		t.handle++
		t.rules = append(t.rules, ObservedRule{Handle: t.handle, Ours: true, Rule: op.Rule})
	case DeleteRule:
		i := slices.IndexFunc(t.rules, func(r ObservedRule) bool { return r.Handle == op.Handle })
		if i < 0 {
			return fmt.Errorf("no rule with handle %d (ENOENT)", op.Handle)
		}
		t.rules = slices.Delete(t.rules, i, i+1)
	default:
		return fmt.Errorf("unknown operation %d", op.Kind)
	}
	return nil
}
