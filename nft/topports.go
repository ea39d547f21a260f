package nft

import (
	"fmt"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PortRule is one nftables rule of the --to-ports distribution, without the matches that select the
// traffic to masquerade: the caller puts its own in front (masqd's nfproto, daddr set lookup and fib daddr
// type matches) and joins the texts with a space.
type PortRule struct {
	// Exprs follow the caller's matches in the rule. They use registers 1 and 2 and end with masquerade.
	Exprs []expr.Any
	// Text is Exprs as `nft list` prints them, counter at zero:
	// "meta l4proto tcp numgen random mod 378 < 77 counter packets 0 bytes 0 masquerade to :1024-1100".
	Text string

	match, action string // Text's parts before and after the counter
}

// text is Text with the counter at c.
func (r PortRule) text(c Counter) string {
	return fmt.Sprintf("%scounter packets %d bytes %d %s", r.match, c.Packets, c.Bytes, r.action)
}

// ToPortsRules is --to-ports for nftables: for each of TCP, UDP and SCTP, one rule per port range, in the
// order given, that masquerades to that range. As upstream does it with iptables' statistic match, the
// rule for range i matches with probability size(i) / (ports in ranges i..n) - numgen random mod that
// many, below size(i) - and the last range takes whatever reaches it, so each range gets its share of
// new connections in proportion to its size. The caller places these rules before its catch-all
// masquerade rule, which then handles every other protocol. Nil when ranges is empty.
//
// Each rule counts what it masquerades. With randomFully the masquerade picks ports
// random,fully-random, as masqd's catch-all rule does.
//
// The rules need NewMasqPortsTransport under the google/nftables connection that sends them: v0.3.0 of
// that library leaves out the masquerade flags whenever a port range is given, and without them the
// kernel ignores the range. Text is what the kernel holds once the transport has repaired them.
func ToPortsRules(ranges []PortRange, randomFully bool) []PortRule {
	if len(ranges) == 0 {
		return nil
	}
	total := 0
	for _, r := range ranges {
		total += r.Size()
	}
	var out []PortRule
	for _, proto := range []struct {
		name string
		num  byte
	}{{"tcp", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}, {"sctp", unix.IPPROTO_SCTP}} {
		remaining := total
		for _, r := range ranges {
			exprs := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto.num}},
			}
			match := "meta l4proto " + proto.name + " "
			if r.Size() < remaining {
				// numgen yields a number in host byte order; compare it big-endian, as nft does, because
				// the kernel compares registers with memcmp.
				exprs = append(exprs,
					&expr.Numgen{Register: 1, Modulus: uint32(remaining), Type: unix.NFT_NG_RANDOM},
					&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
					&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(r.Size()))},
				)
				match += fmt.Sprintf("numgen random mod %d < %d ", remaining, r.Size())
			}
			remaining -= r.Size()
			exprs = append(exprs, &expr.Counter{},
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.First)})
			// A single port reads both ends from register 1, as the kernel records it when given only one.
			masq := &expr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 1, Random: randomFully, FullyRandom: randomFully}
			if r.Last != r.First {
				exprs = append(exprs, &expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.Last)})
				masq.RegProtoMax = 2
			}
			exprs = append(exprs, masq)
			action := "masquerade to :" + r.String()
			if randomFully {
				action += " random,fully-random"
			}
			rule := PortRule{Exprs: exprs, match: match, action: action}
			rule.Text = rule.text(Counter{})
			out = append(out, rule)
		}
	}
	return out
}
