package ruleset

import (
	"fmt"
	"strconv"
	"strings"
)

// String renders r in `nft -f` syntax, byte for byte as `nft list table inet masqd` prints it (nft 1.0.x),
// counters included: a freshly applied compiled ruleset shows "packets 0 bytes 0".
func (r Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, s := range r.sets() {
		if i > 0 {
			b.WriteString("\n")
		}
		typ, perLine := setType(s.name)
		writeSet(&b, s.name, typ, s.ivs, perLine)
	}
	fmt.Fprintf(&b, "\n\tchain %s {\n", ChainName)
	b.WriteString("\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	var port4, port6 int
	for _, rule := range r.Rules() {
		c, counters, n := r.Counter4, r.PortCounters4, &port4
		if rule.IPv6 {
			c, counters, n = r.Counter6, r.PortCounters6, &port6
		}
		if rule.Port != nil {
			c = Counter{}
			if *n < len(counters) {
				c = counters[*n]
			}
			*n++
		}
		fmt.Fprintf(&b, "\t\t%s\n", rule.text(c))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// writeSet prints a set the way nft does: perLine elements on each line, continuation lines indented by
// three tabs and five spaces.
func writeSet(b *strings.Builder, name, typ string, elems []Interval, perLine int) {
	fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", name, typ)
	if len(elems) > 0 {
		b.WriteString("\t\telements = { ")
		for i, iv := range elems {
			if i > 0 {
				if i%perLine == 0 {
					b.WriteString(",\n\t\t\t     ")
				} else {
					b.WriteString(", ")
				}
			}
			b.WriteString(elementText(name, iv))
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

// elementText is one element of set name as nft prints it: an interface name quoted, else the interval.
func elementText(set string, iv Interval) string {
	if set == EgressName {
		if n, ok := IfnameOf(iv); ok {
			return strconv.Quote(n)
		}
	}
	return iv.String()
}

// setType is the nft type of one of masqd's sets and how many elements nft lists on a line.
func setType(name string) (typ string, perLine int) {
	if name == EgressName {
		return "ifname", 1
	}
	if IsIPv6Set(name) {
		return "ipv6_addr", 1
	}
	return "ipv4_addr", 2
}
