package config

import (
	"encoding/binary"
	"net/netip"
)

// Merge combines configurations read from several files, as when a user's and a platform's ConfigMap are mounted
// side by side (Azure ip-masq-agent-v2). The result does not depend on anything but the order of cfgs:
//
//   - NonMasqueradeCIDRs and MasqueradeCIDRs are unions, in first-seen order; a prefix seen again is dropped and
//     the first Source kept.
//   - MasqLinkLocal, MasqLinkLocalIPv6 and EnableIPv6 are true when any config says so.
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
	nNonMasq, nMasq := 0, 0
	for _, c := range cfgs {
		nNonMasq += len(c.NonMasqueradeCIDRs)
		nMasq += len(c.MasqueradeCIDRs)
	}
	nonMasq := make(map[prefixKey]struct{}, nNonMasq)
	masq := make(map[prefixKey]struct{}, nMasq)
	if nNonMasq > 0 { // Merge of nothing keeps nil lists
		out.NonMasqueradeCIDRs = make([]CIDR, 0, nNonMasq)
	}
	if nMasq > 0 {
		out.MasqueradeCIDRs = make([]CIDR, 0, nMasq)
	}
	for _, c := range cfgs {
		out.NonMasqueradeCIDRs = union(out.NonMasqueradeCIDRs, nonMasq, c.NonMasqueradeCIDRs)
		out.MasqueradeCIDRs = union(out.MasqueradeCIDRs, masq, c.MasqueradeCIDRs)
		out.MasqLinkLocal = out.MasqLinkLocal || c.MasqLinkLocal
		out.MasqLinkLocalIPv6 = out.MasqLinkLocalIPv6 || c.MasqLinkLocalIPv6
		out.EnableIPv6 = out.EnableIPv6 || c.EnableIPv6
		out.CIDRLimit = max(out.CIDRLimit, c.CIDRLimit)
		if c.ResyncInterval > 0 && (out.ResyncInterval == 0 || c.ResyncInterval < out.ResyncInterval) {
			out.ResyncInterval = c.ResyncInterval
		}
		out.Files = append(out.Files, c.Files...)
	}
	return out
}

// union appends to dst each CIDR of src whose prefix is not yet in seen.
func union(dst []CIDR, seen map[prefixKey]struct{}, src []CIDR) []CIDR {
	for _, c := range src {
		k := keyOf(c.Prefix)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		dst = append(dst, c)
	}
	return dst
}

// prefixKey is a prefix as plain numbers: a map hashes it several times faster than a netip.Prefix, which
// holds a pointer. A merge of 200,000 prefixes went from 50 to 10 ms.
type prefixKey struct {
	hi, lo uint64
	bits   int // 256 more for IPv4, so that 1.2.3.0/24 and ::ffff:1.2.3.0/24 differ
}

func keyOf(p netip.Prefix) prefixKey {
	a := p.Addr().As16()
	k := prefixKey{hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]), bits: p.Bits()}
	if p.Addr().Is4() {
		k.bits += 256
	}
	return k
}
