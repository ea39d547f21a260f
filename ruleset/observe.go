package ruleset

import (
	"fmt"
	"slices"
)

// Assemble is the Ruleset an observed table holds, given its usable sets' elements by name: the shape
// masqd's rules say masqd asked for (IPv6, RandomFully, ToPorts), their counters, and Foreign listing
// whatever in the table masqd would not have written. obs.Have is not read. Both the nftables backend's
// read and the Fake use it, so they report a table the same way.
func Assemble(obs Observed, elements map[string][]Interval) Ruleset {
	var r Ruleset
	foreign := func(format string, args ...any) { r.Foreign = append(r.Foreign, fmt.Sprintf(format, args...)) }
	var have4, have6, haveSrc4, haveSrc6, haveEgress bool
	for _, s := range obs.Sets {
		switch {
		case s.Usable && s.Name == Set4Name:
			r.NonMasq4, have4 = elements[s.Name], true
		case s.Usable && s.Name == Set6Name:
			r.NonMasq6, have6 = elements[s.Name], true
		case s.Usable && s.Name == Src4Name:
			r.Src4, haveSrc4 = elements[s.Name], true
		case s.Usable && s.Name == Src6Name:
			r.Src6, haveSrc6 = elements[s.Name], true
		case s.Usable && s.Name == EgressName:
			haveEgress = true
			for _, iv := range elements[s.Name] {
				n, ok := IfnameOf(iv)
				if !ok {
					foreign("set %s element %s", s.Name, iv)
					continue
				}
				r.Egress = append(r.Egress, n)
			}
		default:
			foreign("set %s", s.Name)
		}
	}
	if !have4 {
		foreign("set %s missing", Set4Name)
	}
	for _, c := range obs.Others {
		foreign("chain %s", c)
	}
	if !obs.Chain {
		foreign("chain %s missing", ChainName)
		return r
	}

	// The shape: from the IPv4 catch-all rule (its flags) and the IPv4 TCP port rules before it (the
	// ranges, in order); IPv6 from whether an IPv6 catch-all rule is there.
	catchAll4 := slices.IndexFunc(obs.Rules, func(o ObservedRule) bool { return o.Ours && !o.Rule.IPv6 && o.Rule.Port == nil })
	if catchAll4 < 0 {
		foreign("IPv4 rule missing")
	} else {
		r.RandomFully = obs.Rules[catchAll4].Rule.RandomFully
		r.Sources = obs.Rules[catchAll4].Rule.Sources
		r.SNAT4 = obs.Rules[catchAll4].Rule.SNAT
		for _, o := range obs.Rules[:catchAll4] {
			if o.Ours && !o.Rule.IPv6 && o.Rule.Port != nil && o.Rule.Port.Proto == "tcp" {
				r.ToPorts = append(r.ToPorts, o.Rule.Port.Range)
			}
		}
	}
	catchAll6 := slices.IndexFunc(obs.Rules, func(o ObservedRule) bool { return o.Ours && o.Rule.IPv6 && o.Rule.Port == nil })
	r.IPv6 = catchAll6 >= 0
	if r.IPv6 {
		r.SNAT6 = obs.Rules[catchAll6].Rule.SNAT
	}
	egressRule := catchAll4 >= 0 && obs.Rules[catchAll4].Rule.Egress

	want := r.Rules()
	for i, o := range obs.Rules {
		if i >= len(want) || !o.Ours || !o.Rule.equal(want[i]) {
			foreign("rule %d (handle %d) in chain %s", i, o.Handle, ChainName)
			continue
		}
		switch {
		case o.Rule.Port == nil && !o.Rule.IPv6:
			r.Counter4 = o.Counter
		case o.Rule.Port == nil:
			r.Counter6 = o.Counter
		case !o.Rule.IPv6:
			r.PortCounters4 = append(r.PortCounters4, o.Counter)
		default:
			r.PortCounters6 = append(r.PortCounters6, o.Counter)
		}
	}
	if len(obs.Rules) < len(want) {
		foreign("%d of the %d rules of chain %s missing", len(want)-len(obs.Rules), len(want), ChainName)
	}
	if r.IPv6 != have6 {
		foreign("IPv6 set and rules do not match (set present: %t, rules present: %t)", have6, r.IPv6)
	}
	if r.Sources != haveSrc4 || r.Sources && r.IPv6 != haveSrc6 || !r.IPv6 && haveSrc6 {
		foreign("sources sets and rules do not match (sets present: %t, %t; rules read them: %t)", haveSrc4, haveSrc6, r.Sources)
	}
	if haveEgress != egressRule || haveEgress && len(r.Egress) == 0 {
		foreign("egress set and rules do not match (set present: %t, %d names; rules read it: %t)", haveEgress, len(r.Egress), egressRule)
	}
	return r
}
