package iptables

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// IPTablesChainState is one family's nat table as iptables-save shows it, seen from one chain: whether the
// chain exists, its rules, the POSTROUTING rules that jump to it, and its MASQUERADE counters.
type IPTablesChainState struct {
	// NatTable says whether the dump had a nat table at all.
	NatTable bool
	// Chain says whether the chain exists.
	Chain bool
	// Rules are the chain's rules in order, as iptables-save prints them ("-A CHAIN ..."), counters removed.
	Rules []string
	// Jumps are the POSTROUTING rules whose target is the chain, as printed, whatever their matches.
	Jumps []string
	// Counter sums the counters of the chain's MASQUERADE rules (zero unless read with -c).
	Counter ruleset.Counter
}

// InSync reports whether the family holds want's chain and exactly its jump, nothing more.
func (s IPTablesChainState) InSync(want IPTablesRules, f Family) bool {
	if f == IPv6 && !want.IPv6 {
		return !s.Chain && len(s.Jumps) == 0
	}
	return s.Chain && slices.Equal(s.Rules, want.SaveLines(f)) &&
		len(s.Jumps) == 1 && s.Jumps[0] == want.JumpSaveLine()
}

// parseSave reads the nat table of iptables-save output (with or without -c) as seen from chain.
func parseSave(out string, chain string) IPTablesChainState {
	var s IPTablesChainState
	table := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			if table == "nat" {
				s.NatTable = true
			}
			continue
		case table != "nat":
			continue
		case strings.HasPrefix(line, ":"):
			if name, _, _ := strings.Cut(line[1:], " "); name == chain {
				s.Chain = true
			}
			continue
		}
		cnt, rule := splitCounters(line)
		switch {
		case strings.HasPrefix(rule, "-A "+chain+" "):
			s.Rules = append(s.Rules, rule)
			if ruleTarget(rule) == "MASQUERADE" {
				s.Counter.Packets += cnt.Packets
				s.Counter.Bytes += cnt.Bytes
			}
		case strings.HasPrefix(rule, "-A POSTROUTING ") && ruleTarget(rule) == chain:
			s.Jumps = append(s.Jumps, rule)
		}
	}
	return s
}

// splitCounters splits "[packets:bytes] -A ..." (iptables-save -c) into the counter and the rule.
func splitCounters(line string) (ruleset.Counter, string) {
	if !strings.HasPrefix(line, "[") {
		return ruleset.Counter{}, line
	}
	head, rest, ok := strings.Cut(line, "] ")
	if !ok {
		return ruleset.Counter{}, line
	}
	p, b, _ := strings.Cut(head[1:], ":")
	packets, err1 := strconv.ParseUint(p, 10, 64)
	bytes, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return ruleset.Counter{}, line
	}
	return ruleset.Counter{Packets: packets, Bytes: bytes}, rest
}

// ruleTarget returns the target of a saved rule: the word after its last "-j" (or "-g").
func ruleTarget(rule string) string {
	words := splitWords(rule)
	for i := len(words) - 2; i >= 0; i-- {
		if words[i] == "-j" || words[i] == "-g" {
			return words[i+1]
		}
	}
	return ""
}

// splitWords splits a saved rule into words the way iptables-restore does: on spaces, with double-quoted
// words that may hold spaces and backslash-escaped quotes.
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
			inWord = true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// RuleCounts are what iptables-save output says about which iptables a node uses, counted as
// kubernetes-sigs/iptables-wrappers counts them.
type RuleCounts struct {
	// Rules is the number of rule lines (lines that start with "-").
	Rules int
	// KubeletChains says whether the kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain is declared.
	KubeletChains bool
}

// countSave counts rules and looks for the kubelet's chains in iptables-save output.
func countSave(out string) RuleCounts {
	var c RuleCounts
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "-"):
			c.Rules++
		case strings.HasPrefix(line, ":KUBE-IPTABLES-HINT ") || strings.HasPrefix(line, ":KUBE-KUBELET-CANARY "):
			c.KubeletChains = true
		}
	}
	return c
}

// HeldRuleset is the nftables model of what the chain read back in v4 and v6 does, for comparing the
// verdicts before and after an edit (ruleset.Flipped): its non-masquerade destinations are the RETURN
// rules' destinations not masqueraded by a rule before them, as CompileIPTables writes the chain
// (masqueradeCIDRs first, RETURNs, then the catch-all MASQUERADE); IPv6 is whether ip6tables has the chain.
// It is pure.
func HeldRuleset(v4, v6 IPTablesChainState) ruleset.Ruleset {
	cfg := config.Config{EnableIPv6: v6.Chain, MasqLinkLocal: true, MasqLinkLocalIPv6: true}
	for _, s := range []IPTablesChainState{v4, v6} {
		for _, rule := range s.Rules {
			words := splitWords(rule)
			var dst netip.Prefix
			for i := 0; i+1 < len(words); i++ {
				if words[i] == "-d" {
					if p, err := netip.ParsePrefix(words[i+1]); err == nil {
						dst = p.Masked()
					} else if a, err := netip.ParseAddr(words[i+1]); err == nil {
						dst = netip.PrefixFrom(a, a.BitLen())
					}
				}
			}
			if !dst.IsValid() {
				continue // the catch-all (and --to-ports' protocol rules): masquerade the rest
			}
			c := config.CIDR{Prefix: dst}
			switch ruleTarget(rule) {
			case "RETURN":
				cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, c)
			case "MASQUERADE":
				cfg.MasqueradeCIDRs = append(cfg.MasqueradeCIDRs, c)
			}
		}
	}
	return ruleset.Compile(cfg, ruleset.Options{})
}
