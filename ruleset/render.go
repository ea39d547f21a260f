package ruleset

import (
	"fmt"
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
	masq := "masquerade"
	if r.RandomFully {
		masq += " random,fully-random"
	}
	ports := PortRules(r.ToPorts)
	family := func(match string, portCounters []Counter, catchAll Counter) {
		for i, p := range ports {
			var c Counter
			if i < len(portCounters) {
				c = portCounters[i]
			}
			fmt.Fprintf(&b, "\t\t%s %s\n", match, p.Text(c, r.RandomFully))
		}
		fmt.Fprintf(&b, "\t\t%s counter packets %d bytes %d %s\n", match, catchAll.Packets, catchAll.Bytes, masq)
	}
	family(Rule{Sources: r.Sources}.match(), r.PortCounters4, r.Counter4)
	if r.IPv6 {
		family(Rule{IPv6: true, Sources: r.Sources}.match(), r.PortCounters6, r.Counter6)
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
			b.WriteString(iv.String())
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

// setType is the nft type of one of masqd's sets and how many elements nft lists on a line.
func setType(name string) (typ string, perLine int) {
	if IsIPv6Set(name) {
		return "ipv6_addr", 1
	}
	return "ipv4_addr", 2
}
