package config

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Merge combines configurations read from several files, as when a user's and a platform's ConfigMap are mounted
// side by side (Azure ip-masq-agent-v2). The result does not depend on anything but the order of cfgs:
//
//   - NonMasqueradeCIDRs, MasqueradeCIDRs, ClusterCIDRs and MasqueradeSourceCIDRs are unions, in first-seen order; a prefix seen again is dropped and
//     the first Source kept.
//   - EgressInterfaces is the union of the names, sorted; the first Source kept.
//   - SNATTo and SNATToInterface are the first config's that sets them, per family for SNATTo: files that
//     disagree are refused by Conflicts, which callers check first.
//   - MasqLinkLocal, MasqLinkLocalIPv6, EnableIPv6 and FlushConntrack are true when any config says so.
//   - CIDRLimit is the largest and ResyncInterval the smallest positive value.
//   - Files is every config's Files, in order.
//
// Each config is what its file means on its own: a file that leaves out nonMasqueradeCIDRs (say, one that only
// sets masqLinkLocal) carries the default ranges, so they are in the union. To keep only a user's ranges, each
// file must list them. The merged list is not checked against CIDRLimit again; each file was checked against its
// own limit.
//
// Merge does not modify cfgs. Merge() returns the zero Config.
func Merge(cfgs ...Config) Config {
	var out Config
	nNonMasq, nMasq, nCluster, nSrc := 0, 0, 0, 0
	for _, c := range cfgs {
		nSrc += len(c.MasqueradeSourceCIDRs)
		nNonMasq += len(c.NonMasqueradeCIDRs)
		nMasq += len(c.MasqueradeCIDRs)
		nCluster += len(c.ClusterCIDRs)
	}
	nonMasq, masq, cluster := newPrefixSet(nNonMasq), newPrefixSet(nMasq), newPrefixSet(nCluster)
	if nNonMasq > 0 { // Merge of nothing keeps nil lists
		out.NonMasqueradeCIDRs = make([]CIDR, 0, nNonMasq)
	}
	if nMasq > 0 {
		out.MasqueradeCIDRs = make([]CIDR, 0, nMasq)
	}
	if nCluster > 0 {
		out.ClusterCIDRs = make([]CIDR, 0, nCluster)
	}
	src := newPrefixSet(nSrc)
	if nSrc > 0 {
		out.MasqueradeSourceCIDRs = make([]CIDR, 0, nSrc)
	}
	for _, c := range cfgs {
		out.NonMasqueradeCIDRs = union(out.NonMasqueradeCIDRs, nonMasq, c.NonMasqueradeCIDRs)
		out.MasqueradeCIDRs = union(out.MasqueradeCIDRs, masq, c.MasqueradeCIDRs)
		out.ClusterCIDRs = union(out.ClusterCIDRs, cluster, c.ClusterCIDRs)
		out.MasqueradeSourceCIDRs = union(out.MasqueradeSourceCIDRs, src, c.MasqueradeSourceCIDRs)
		for _, i := range c.EgressInterfaces {
			if !slices.ContainsFunc(out.EgressInterfaces, func(o Interface) bool { return o.Name == i.Name }) {
				out.EgressInterfaces = append(out.EgressInterfaces, i)
			}
		}
		for _, a := range c.SNATTo {
			if !slices.ContainsFunc(out.SNATTo, func(o Address) bool { return o.Addr.Is4() == a.Addr.Is4() }) {
				out.SNATTo = append(out.SNATTo, a)
			}
		}
		if out.SNATToInterface.Name == "" {
			out.SNATToInterface = c.SNATToInterface
		}
		out.MasqLinkLocal = out.MasqLinkLocal || c.MasqLinkLocal
		out.MasqLinkLocalIPv6 = out.MasqLinkLocalIPv6 || c.MasqLinkLocalIPv6
		out.EnableIPv6 = out.EnableIPv6 || c.EnableIPv6
		out.FlushConntrack = out.FlushConntrack || c.FlushConntrack
		out.CIDRLimit = max(out.CIDRLimit, c.CIDRLimit)
		if c.ResyncInterval > 0 && (out.ResyncInterval == 0 || c.ResyncInterval < out.ResyncInterval) {
			out.ResyncInterval = c.ResyncInterval
		}
		out.Files = append(out.Files, c.Files...)
	}
	slices.SortFunc(out.EgressInterfaces, func(x, y Interface) int { return strings.Compare(x.Name, y.Name) })
	slices.SortStableFunc(out.SNATTo, func(x, y Address) int { return x.Addr.BitLen() - y.Addr.BitLen() })
	return out
}

// Conflicts refuses configs that cannot be merged: traffic leaves with one address per family, so two files
// giving different snatTo addresses of a family, or different snatToInterface names, or one snatTo and another
// snatToInterface, are an *Error naming both places. Nil when cfgs agree.
func Conflicts(cfgs ...Config) error {
	var v4, v6 *Address
	var iface *Interface
	for _, c := range cfgs {
		for _, a := range c.SNATTo {
			first := &v4
			if a.Addr.Is6() {
				first = &v6
			}
			switch {
			case *first == nil:
				*first = &a
			case (*first).Addr != a.Addr:
				return &Error{Source: a.Source, Key: keySNATTo.String(), Value: a.Addr.String(),
					Msg: fmt.Sprintf("%s gives %s: traffic leaves with one address per family", (*first).Source, (*first).Addr),
					Fix: "give snatTo in one file only, or the same address in both"}
			}
			if iface != nil {
				return conflictIfaceAddr(*iface, a)
			}
		}
		if i := c.SNATToInterface; i.Name != "" {
			switch {
			case iface == nil:
				iface = &i
			case iface.Name != i.Name:
				return &Error{Source: i.Source, Key: keySNATToInterface.String(), Value: i.Name,
					Msg: fmt.Sprintf("%s gives %s: traffic leaves with one interface's address", iface.Source, iface.Name),
					Fix: "give snatToInterface in one file only, or the same name in both"}
			}
			for _, a := range []*Address{v4, v6} {
				if a != nil {
					return conflictIfaceAddr(i, *a)
				}
			}
		}
	}
	return nil
}

func conflictIfaceAddr(i Interface, a Address) error {
	return &Error{Source: i.Source, Key: keySNATToInterface.String(), Value: i.Name,
		Msg: fmt.Sprintf("%s gives snatTo %s: masqueraded traffic can leave with one address only", a.Source, a.Addr),
		Fix: "keep snatTo or snatToInterface, in one file"}
}

// union appends to dst each CIDR of src whose prefix is not yet in seen.
func union(dst []CIDR, seen prefixSet, src []CIDR) []CIDR {
	for _, c := range src {
		if seen.add(c.Prefix) {
			dst = append(dst, c)
		}
	}
	return dst
}

// prefixSet is a set of prefixes keyed by plain numbers, which a map hashes several times faster than a
// netip.Prefix (it holds a pointer): an IPv4 prefix is one uint64, address and length.
type prefixSet struct {
	v4 map[uint64]struct{}
	v6 map[prefix6]struct{}
}

type prefix6 struct {
	hi, lo uint64
	bits   int
}

func newPrefixSet(n int) prefixSet {
	return prefixSet{v4: make(map[uint64]struct{}, n), v6: map[prefix6]struct{}{}}
}

// add adds p and reports whether it was not in the set yet.
func (s prefixSet) add(p netip.Prefix) bool {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		k := uint64(binary.BigEndian.Uint32(b[:]))<<8 | uint64(p.Bits())
		if _, dup := s.v4[k]; dup {
			return false
		}
		s.v4[k] = struct{}{}
		return true
	}
	b := a.As16()
	k := prefix6{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: p.Bits()}
	if _, dup := s.v6[k]; dup {
		return false
	}
	s.v6[k] = struct{}{}
	return true
}
