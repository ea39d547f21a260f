package nft

import (
	"fmt"
	"strings"
)

// String renders r in `nft -f` syntax, byte for byte as `nft list table inet masqd` prints it (nft 1.0.x),
// counters included: a freshly applied compiled ruleset shows "packets 0 bytes 0".
func (r Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	writeSet(&b, Set4Name, "ipv4_addr", r.NonMasq4, 2)
	if r.IPv6 {
		b.WriteString("\n")
		writeSet(&b, Set6Name, "ipv6_addr", r.NonMasq6, 1)
	}
	fmt.Fprintf(&b, "\n\tchain %s {\n", ChainName)
	b.WriteString("\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	masq := "masquerade"
	if r.RandomFully {
		masq += " random,fully-random"
	}
	fmt.Fprintf(&b, "\t\tip daddr != @%s fib daddr type != local counter packets %d bytes %d %s\n",
		Set4Name, r.Counter4.Packets, r.Counter4.Bytes, masq)
	if r.IPv6 {
		fmt.Fprintf(&b, "\t\tip6 daddr != @%s fib daddr type != local counter packets %d bytes %d %s\n",
			Set6Name, r.Counter6.Packets, r.Counter6.Bytes, masq)
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
