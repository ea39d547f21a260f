package ruleset

import (
	"fmt"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of source ports, as given to --to-ports ("1024-29999").
type PortRange struct {
	First, Last uint16
}

// Size is the number of ports in the range.
func (r PortRange) Size() int { return int(r.Last) - int(r.First) + 1 }

// String is the range as iptables-save prints it: "first-last", or one port alone.
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// ParsePortRanges parses --to-ports: comma-separated ports or port ranges ("1024-29999,32768-65535"). The
// empty string is no ranges. Ports are 1-65535, each range ascending, and the ranges may not overlap (an
// overlap would weigh its ports twice).
func ParsePortRanges(s string) ([]PortRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port range %q: %w", part, err)
		}
		last := first
		if isRange {
			if last, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("port range %q: %w", part, err)
			}
		}
		if first > last {
			return nil, fmt.Errorf("port range %q: first port is above the last; write %d-%d", part, last, first)
		}
		r := PortRange{First: first, Last: last}
		for _, o := range out {
			if r.First <= o.Last && o.First <= r.Last {
				return nil, fmt.Errorf("port range %q overlaps %q; list each port once", part, o)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// IP protocol numbers of the protocols --to-ports applies to.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// protoName is the name of a --to-ports protocol's number; "" for another.
func protoName(num byte) string {
	switch num {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoSCTP:
		return "sctp"
	}
	return ""
}

// PortRuleOf is the port rule of protocol number proto (TCP, UDP or SCTP; ok false for another) that
// masquerades range r for Below of every Modulus new connections (Modulus 0: all of them).
func PortRuleOf(proto byte, modulus, below uint32, r PortRange) (PortRule, bool) {
	name := protoName(proto)
	return PortRule{Proto: name, ProtoNum: proto, Modulus: modulus, Below: below, Range: r}, name != ""
}

// PortRule is one rule of the --to-ports distribution, as data: for one protocol, masquerade to one port
// range, for the connections that Below of every Modulus new connections give (numgen random mod Modulus <
// Below); Modulus 0 means every connection that reaches the rule. The backend turns it into expressions;
// Text is how `nft list` prints it.
type PortRule struct {
	Proto    string // "tcp", "udp" or "sctp"
	ProtoNum byte
	Modulus  uint32
	Below    uint32
	Range    PortRange
}

// PortRules is --to-ports for nftables: for each of TCP, UDP and SCTP, one rule per port range, in the
// order given, that masquerades to that range. As upstream does it with iptables' statistic match, the rule
// for range i matches with probability size(i) / (ports in ranges i..n), and the last range takes whatever
// reaches it, so each range gets its share of new connections in proportion to its size. The caller places
// these rules before its catch-all masquerade rule, which then handles every other protocol. Nil when
// ranges is empty.
func PortRules(ranges []PortRange) []PortRule {
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
	}{{protoName(protoTCP), protoTCP}, {protoName(protoUDP), protoUDP}, {protoName(protoSCTP), protoSCTP}} {
		remaining := total
		for _, r := range ranges {
			rule := PortRule{Proto: proto.name, ProtoNum: proto.num, Range: r}
			if r.Size() < remaining {
				rule.Modulus, rule.Below = uint32(remaining), uint32(r.Size())
			}
			remaining -= r.Size()
			out = append(out, rule)
		}
	}
	return out
}

// Text is the rule as `nft list` prints it after the family's matches, with counter c: "meta l4proto tcp
// numgen random mod 378 < 77 counter packets 0 bytes 0 masquerade to :1024-1100 random,fully-random".
func (p PortRule) Text(c Counter, randomFully bool) string {
	return fmt.Sprintf("%s counter packets %d bytes %d %s", p.head(), c.Packets, c.Bytes, Rule{Port: &p, RandomFully: randomFully}.verdict())
}

// head is the rule's protocol and share matches as nft prints them: "meta l4proto tcp numgen random mod
// 378 < 77".
func (p PortRule) head() string {
	h := "meta l4proto " + p.Proto
	if p.Modulus != 0 {
		h += fmt.Sprintf(" numgen random mod %d < %d", p.Modulus, p.Below)
	}
	return h
}
