package nft

import (
	"net/netip"
	"reflect"
	"slices"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// ruleExprs is one rule of masqd's chain as expressions: the family's match (familyMatch), then a
// --to-ports rule's numgen, counter and masquerade to its range, or the catch-all counter and masquerade.
// setID and srcID are the batch-local IDs of the sets the rule reads (the non-masquerade set, and with
// Sources the sources set) when the same batch creates them, else 0.
func ruleExprs(r ruleset.Rule, setID, srcID, egressID uint32) []expr.Any {
	nfproto := byte(unix.NFPROTO_IPV4)
	if r.IPv6 {
		nfproto = unix.NFPROTO_IPV6
	}
	exprs := familyMatch(nfproto, r.Sources, setID, srcID)
	if r.Egress {
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: ruleset.EgressName, SetID: egressID},
		)
	}
	if r.SNAT.IsValid() {
		return append(exprs, snatExprs(r, nfproto)...)
	}
	if r.Port == nil {
		return append(exprs, &expr.Counter{}, &expr.Masq{Random: r.RandomFully, FullyRandom: r.RandomFully})
	}
	p := r.Port
	exprs = append(exprs, portMatch(p)...)
	exprs = append(exprs, &expr.Counter{}, &expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(p.Range.First)})
	// A single port reads both ends from register 1, as the kernel records it when given only one.
	masq := &expr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 1, Random: r.RandomFully, FullyRandom: r.RandomFully}
	if p.Range.Last != p.Range.First {
		exprs = append(exprs, &expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.Range.Last)})
		masq.RegProtoMax = 2
	}
	return append(exprs, masq)
}

// portMatch is a --to-ports rule's protocol and share: meta l4proto P [numgen random mod M < B].
func portMatch(p *ruleset.PortRule) []expr.Any {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.ProtoNum}},
	}
	if p.Modulus != 0 {
		// numgen yields a number in host byte order; compare it big-endian, as nft does, because the kernel
		// compares registers with memcmp.
		exprs = append(exprs,
			&expr.Numgen{Register: 1, Modulus: p.Modulus, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(p.Below)},
		)
	}
	return exprs
}

// snatExprs is a rule's end when it translates to r.SNAT, as nft writes `snat ip[6] to ADDR[:PORTS]`: the
// port rule's matches, the counter, the address in register 1 (the ports in 2 and 3), and the nat.
func snatExprs(r ruleset.Rule, nfproto byte) []expr.Any {
	var exprs []expr.Any
	if r.Port != nil {
		exprs = portMatch(r.Port)
	}
	exprs = append(exprs, &expr.Counter{}, &expr.Immediate{Register: 1, Data: r.SNAT.AsSlice()})
	nat := &expr.NAT{Type: expr.NATTypeSourceNAT, Family: uint32(nfproto), RegAddrMin: 1, RegAddrMax: 1,
		Random: r.RandomFully, FullyRandom: r.RandomFully}
	if p := r.Port; p != nil {
		exprs = append(exprs, &expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.Range.First)})
		nat.RegProtoMin, nat.RegProtoMax, nat.Specified = 2, 2, true
		if p.Range.Last != p.Range.First {
			exprs = append(exprs, &expr.Immediate{Register: 3, Data: binaryutil.BigEndian.PutUint16(p.Range.Last)})
			nat.RegProtoMax = 3
		}
	}
	return append(exprs, nat)
}

// familyMatch is what every rule of masqd's chain starts with: [ip[6] saddr @sources] ip[6] daddr != @set
// fib daddr type != local.
func familyMatch(nfproto byte, sources bool, setID, srcID uint32) []expr.Any {
	off, srcOff, n := uint32(16), uint32(12), uint32(4) // IPv4 daddr, saddr
	name, src := ruleset.Set4Name, ruleset.Src4Name
	if nfproto == unix.NFPROTO_IPV6 {
		off, srcOff, n, name, src = 24, 8, 16, ruleset.Set6Name, ruleset.Src6Name
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
	}
	if sources {
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: srcOff, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: src, SetID: srcID},
		)
	}
	return append(exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: name, SetID: setID, Invert: true},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	)
}

// decodeRule recognises one of masqd's rules in a kernel rule's expressions: it reads the parameters a
// rule of masqd's could have (family, protocol, numgen, port range, flags) and accepts the rule only if the
// rule those parameters make is, expression for expression, the kernel's. It returns the rule's counter.
func decodeRule(exprs []expr.Any) (ruleset.Rule, ruleset.Counter, bool) {
	var r ruleset.Rule
	if len(exprs) > 3 {
		if l, ok := exprs[3].(*expr.Lookup); ok && !l.Invert && (l.SetName == ruleset.Src4Name || l.SetName == ruleset.Src6Name) {
			r.Sources = true
		}
	}
	head := len(familyMatch(unix.NFPROTO_IPV4, r.Sources, 0, 0))
	if len(exprs) < head+2 {
		return ruleset.Rule{}, ruleset.Counter{}, false
	}
	if c, ok := exprs[1].(*expr.Cmp); ok && len(c.Data) == 1 {
		r.IPv6 = c.Data[0] == unix.NFPROTO_IPV6
	}
	var cnt ruleset.Counter
	var proto byte
	var modulus, below uint32
	var rng ruleset.PortRange
	snat := false
	for _, e := range exprs[head:] {
		if m, ok := e.(*expr.Meta); ok && m.Key == expr.MetaKeyOIFNAME {
			r.Egress = true
		}
		if n, ok := e.(*expr.NAT); ok && n.Type == expr.NATTypeSourceNAT {
			snat = true
			r.RandomFully = n.Random && n.FullyRandom
		}
	}
	for _, e := range exprs[head:] {
		switch e := e.(type) {
		case *expr.Masq:
			r.RandomFully = e.Random && e.FullyRandom
		case *expr.Counter:
			cnt = ruleset.Counter{Packets: e.Packets, Bytes: e.Bytes}
		case *expr.Cmp:
			switch {
			case e.Op == expr.CmpOpEq && len(e.Data) == 1:
				proto = e.Data[0]
			case e.Op == expr.CmpOpLt && len(e.Data) == 4:
				below = binaryutil.BigEndian.Uint32(e.Data)
			}
		case *expr.Numgen:
			modulus = e.Modulus
		case *expr.Immediate:
			switch {
			case snat && e.Register == 1:
				if a, ok := netip.AddrFromSlice(e.Data); ok {
					r.SNAT = a
				}
			case snat && len(e.Data) == 2 && e.Register == 2:
				v := binaryutil.BigEndian.Uint16(e.Data)
				rng.First, rng.Last = v, v
			case len(e.Data) == 2 && e.Register == 1:
				v := binaryutil.BigEndian.Uint16(e.Data)
				rng.First, rng.Last = v, v
			case len(e.Data) == 2:
				rng.Last = binaryutil.BigEndian.Uint16(e.Data)
			}
		}
	}
	if proto != 0 {
		port, ok := ruleset.PortRuleOf(proto, modulus, below, rng)
		if !ok {
			return ruleset.Rule{}, ruleset.Counter{}, false
		}
		r.Port = &port
	}
	if snat && !r.SNAT.IsValid() {
		return ruleset.Rule{}, ruleset.Counter{}, false
	}
	if !sameRule(exprs, ruleExprs(r, 0, 0, 0)) {
		return ruleset.Rule{}, ruleset.Counter{}, false
	}
	return r, cnt, true
}

// sameRule reports whether the kernel's rule does what want does, counters aside. Masquerades are compared
// field by field (a lookup's set ID, which the kernel does not report, aside). The port rules' byteorder
// expressions are left out of the comparison: google/nftables v0.3.0 does not decode byteorder and drops it
// from the rules it reads (nft lists it, and the golden tests compare nft's listing).
func sameRule(kernel, want []expr.Any) bool {
	isByteorder := func(e expr.Any) bool { _, ok := e.(*expr.Byteorder); return ok }
	kernel = slices.DeleteFunc(slices.Clone(kernel), isByteorder)
	want = slices.DeleteFunc(slices.Clone(want), isByteorder)
	if len(kernel) != len(want) {
		return false
	}
	for i := range kernel {
		switch k := kernel[i].(type) {
		case *expr.Counter:
			if _, ok := want[i].(*expr.Counter); !ok {
				return false
			}
		case *expr.Masq:
			w, ok := want[i].(*expr.Masq)
			if !ok || k.ToPorts != w.ToPorts || k.RegProtoMin != w.RegProtoMin || k.RegProtoMax != w.RegProtoMax ||
				k.Random != w.Random || k.FullyRandom != w.FullyRandom || k.Persistent != w.Persistent {
				return false
			}
		default:
			ea, err1 := expr.Marshal(unix.NFPROTO_INET, kernel[i])
			eb, err2 := expr.Marshal(unix.NFPROTO_INET, want[i])
			if err1 != nil || err2 != nil || !reflect.DeepEqual(ea, eb) {
				return false
			}
		}
	}
	return true
}
