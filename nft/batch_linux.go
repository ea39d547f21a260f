package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// batch encodes one kernel transaction of a ruleset.Plan: every message in one buffer, in the order of the
// plan's operations, each recorded with what it does (for errors); commit (txn_linux.go) frames it with the
// batch's begin and end and sends it as one datagram.
//
// Set elements are the bulk of an apply: 100,000 prefixes per family make 400,000 kernel elements. They are
// written straight into the buffer, as many per message as one element list attribute holds, without the
// per-element allocations of a general netlink encoder. Rule expressions are encoded by google/nftables'
// expr package, but for a masquerade to a port range, which it encodes without NFTA_MASQ_FLAGS (the kernel
// then ignores the range): that one is written here.
type batch struct {
	table string
	buf   []byte
	msgs  []batchMsg
	// setIDs are the batch-local IDs of the sets the batch creates: a rule or an element list refers to a
	// set created in the same batch by it.
	setIDs map[string]uint32

	// The element message being written, if open.
	open      bool
	msgType   uint16
	msgFlags  uint16
	set       string
	setID     uint32
	msgStart  int // offset of the message header in buf
	nestStart int // offset of the element list attribute header in buf
	n         uint16
}

// batchMsg is one message in batch's buffer.
type batchMsg struct {
	offset int    // of its netlink header
	what   string // for errors: "add elements to set nonmasq4"
}

const (
	nlmsgHdrLen = unix.SizeofNlMsghdr // 16
	nlaHdrLen   = unix.SizeofNlAttr   // 4
	// maxNestLen bounds a message's element list: a netlink attribute's length is 16 bits, and past it
	// the kernel would read a truncated list. It allows 4,095 elements per message at the smallest.
	maxNestLen = 0xffff
)

func newBatch(table string) *batch { return &batch{table: table, setIDs: map[string]uint32{}} }

// empty reports whether nothing was written.
func (b *batch) empty() bool { return len(b.msgs) == 0 }

// transaction writes every operation of tx.
func (b *batch) transaction(tx ruleset.Transaction) error {
	for _, op := range tx {
		if err := b.op(op); err != nil {
			return fmt.Errorf("encode %s: %w", op, err)
		}
	}
	b.flush()
	return nil
}

// op writes one operation, as google/nftables would encode it, flags included.
func (b *batch) op(op ruleset.Op) error {
	const create = unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE
	const plain = unix.NLM_F_REQUEST | unix.NLM_F_ACK
	switch op.Kind {
	case ruleset.AddTable, ruleset.DeleteTable:
		typ, flags, what := uint16(unix.NFT_MSG_NEWTABLE), uint16(create), "add table"
		if op.Kind == ruleset.DeleteTable {
			typ, flags, what = unix.NFT_MSG_DELTABLE, plain, "delete table"
		}
		b.message(typ, flags, what, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_TABLE_NAME, b.table)
			return appendAttrU32(d, unix.NFTA_TABLE_FLAGS, 0)
		})
	case ruleset.AddSet:
		keyType, keyLen, byteOrder := uint32(7), uint32(4), byte(2) // nft's ipv4_addr, big endian
		switch {
		case ruleset.IsIPv6Set(op.Set):
			keyType, keyLen = 8, 16 // ipv6_addr
		case op.Set == ruleset.EgressName:
			keyType, keyLen, byteOrder = 41, 16, 1 // ifname, host byte order (a string)
		}
		id := uint32(len(b.setIDs) + 1)
		b.setIDs[op.Set] = id
		b.message(unix.NFT_MSG_NEWSET, create, "add set "+op.Set, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_SET_TABLE, b.table)
			d = appendAttrString(d, unix.NFTA_SET_NAME, op.Set)
			d = appendAttrU32(d, unix.NFTA_SET_FLAGS, unix.NFT_SET_INTERVAL)
			d = appendAttrU32(d, unix.NFTA_SET_KEY_TYPE, keyType)
			d = appendAttrU32(d, unix.NFTA_SET_KEY_LEN, keyLen)
			d = appendAttrU32(d, unix.NFTA_SET_ID, id)
			// nft's user data: the key's byte order.
			return appendAttrBytes(d, unix.NFTA_SET_USERDATA, []byte{0, 4, byteOrder, 0, 0, 0})
		})
	case ruleset.DeleteSet:
		b.message(unix.NFT_MSG_DELSET, plain, "delete set "+op.Set, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_SET_TABLE, b.table)
			return appendAttrString(d, unix.NFTA_SET_NAME, op.Set)
		})
	case ruleset.FlushSet:
		b.message(unix.NFT_MSG_DELSETELEM, plain, "flush set "+op.Set, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_SET_ELEM_LIST_TABLE, b.table)
			return appendAttrString(d, unix.NFTA_SET_ELEM_LIST_SET, op.Set)
		})
	case ruleset.AddElements, ruleset.DeleteElements:
		b.writeIntervals(op.Set, op.Kind == ruleset.DeleteElements, op.Elements)
	case ruleset.AddChain:
		b.message(unix.NFT_MSG_NEWCHAIN, create, "add chain "+ruleset.ChainName, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_CHAIN_TABLE, b.table)
			d = appendAttrString(d, unix.NFTA_CHAIN_NAME, ruleset.ChainName)
			d = nest(d, unix.NLA_F_NESTED|unix.NFTA_CHAIN_HOOK, func(d []byte) []byte {
				d = appendAttrU32(d, unix.NFTA_HOOK_HOOKNUM, unix.NF_INET_POST_ROUTING)
				return appendAttrU32(d, unix.NFTA_HOOK_PRIORITY, 100) // srcnat
			})
			d = appendAttrU32(d, unix.NFTA_CHAIN_POLICY, 1) // NF_ACCEPT
			return appendAttrString(d, unix.NFTA_CHAIN_TYPE, "nat")
		})
	case ruleset.DeleteChain, ruleset.FlushChain:
		typ, what, nameAttr := uint16(unix.NFT_MSG_DELCHAIN), "delete chain "+op.Chain, uint16(unix.NFTA_CHAIN_NAME)
		if op.Kind == ruleset.FlushChain {
			typ, what, nameAttr = unix.NFT_MSG_DELRULE, "flush chain "+op.Chain, unix.NFTA_RULE_CHAIN
		}
		b.message(typ, plain, what, func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_CHAIN_TABLE, b.table) // NFTA_RULE_TABLE is the same number
			return appendAttrString(d, nameAttr, op.Chain)
		})
	case ruleset.AddRule:
		var err error
		b.message(unix.NFT_MSG_NEWRULE, create|unix.NLM_F_APPEND, "add rule", func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_RULE_TABLE, b.table)
			d = appendAttrString(d, unix.NFTA_RULE_CHAIN, ruleset.ChainName)
			return nest(d, unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, func(d []byte) []byte {
				for _, e := range ruleExprs(op.Rule, b.setIDs[op.Rule.Set()], b.setIDs[op.Rule.SrcSet()], b.setIDs[ruleset.EgressName]) {
					enc, merr := marshalExpr(e)
					if merr != nil {
						err = merr
					}
					d = appendAttrBytes(d, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, enc)
				}
				return d
			})
		})
		return err
	case ruleset.DeleteRule:
		b.message(unix.NFT_MSG_DELRULE, plain, fmt.Sprintf("delete rule %d", op.Handle), func(d []byte) []byte {
			d = appendAttrString(d, unix.NFTA_RULE_TABLE, b.table)
			d = appendAttrString(d, unix.NFTA_RULE_CHAIN, ruleset.ChainName)
			return appendAttrU64(d, unix.NFTA_RULE_HANDLE, op.Handle)
		})
	default:
		return fmt.Errorf("unknown operation %d", op.Kind)
	}
	return nil
}

// message appends one message of type typ (of the nf_tables subsystem, family inet) whose attributes fill
// writes.
func (b *batch) message(typ, flags uint16, what string, fill func([]byte) []byte) {
	b.flush()
	start := len(b.buf)
	b.msgs = append(b.msgs, batchMsg{offset: start, what: what})
	d := appendNlmsgHdr(b.buf, 0, unix.NFNL_SUBSYS_NFTABLES<<8|typ, flags, 0)
	d = append(d, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	d = fill(d)
	binary.NativeEndian.PutUint32(d[start:], uint32(len(d)-start))
	b.buf = d
}

// marshalExpr encodes one expression as the content of an NFTA_LIST_ELEM.
func marshalExpr(e expr.Any) ([]byte, error) {
	m, ok := e.(*expr.Masq)
	if !ok || !m.ToPorts {
		return expr.Marshal(unix.NFPROTO_INET, e)
	}
	// The kernel applies a masquerade's port range only with NF_NAT_RANGE_PROTO_SPECIFIED.
	flags := uint32(unix.NF_NAT_RANGE_PROTO_SPECIFIED)
	if m.Random {
		flags |= unix.NF_NAT_RANGE_PROTO_RANDOM
	}
	if m.FullyRandom {
		flags |= unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY
	}
	d := appendAttrString(nil, unix.NFTA_EXPR_NAME, "masq")
	return nest(d, unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, func(d []byte) []byte {
		d = appendAttrU32(d, unix.NFTA_MASQ_FLAGS, flags)
		d = appendAttrU32(d, unix.NFTA_MASQ_REG_PROTO_MIN, m.RegProtoMin)
		return appendAttrU32(d, unix.NFTA_MASQ_REG_PROTO_MAX, m.RegProtoMax)
	}), nil
}

// writeIntervals appends the messages that add (or, with del, delete) the elements of ivs in set: the
// elements the kernel stores for each interval (ruleset.Interval.ElementKeys), in order.
func (b *batch) writeIntervals(set string, del bool, ivs []ruleset.Interval) {
	if len(ivs) == 0 {
		return
	}
	msgType, flags := uint16(unix.NFT_MSG_NEWSETELEM), uint16(unix.NLM_F_REQUEST|unix.NLM_F_CREATE)
	if del {
		msgType, flags = unix.NFT_MSG_DELSETELEM, unix.NLM_F_REQUEST
	}
	b.flush()
	b.msgType, b.msgFlags, b.set, b.setID = unix.NFNL_SUBSYS_NFTABLES<<8|msgType, flags, set, b.setIDs[set]
	b.grow(intervalsLen(ivs))
	for _, iv := range ivs {
		start, end, hasEnd, keyLen := iv.ElementKeys()
		b.elem(start, keyLen, false)
		if hasEnd {
			b.elem(end, keyLen, true)
		}
	}
	b.flush()
}

// intervalsLen is about the encoded size of ivs' elements and message headers.
func intervalsLen(ivs []ruleset.Interval) int {
	_, _, _, keyLen := ivs[0].ElementKeys()
	per := 2*(nlaHdrLen+elemKeyLen(keyLen)) + nlaHdrLen + 4 // a start and an end element
	n := len(ivs) * per
	return n + (n/maxNestLen+1)*(nlmsgHdrLen+4+64)
}

// elemKeyLen is the encoded length of a start element's attributes (without the element's own header):
// NFTA_SET_ELEM_KEY holding NFTA_DATA_VALUE.
func elemKeyLen(keyLen int) int { return 2*nlaHdrLen + keyLen }

// elem appends one element whose key is the keyLen (4 or 16) low bytes of key, starting a message when none
// is open or the open one is full.
func (b *batch) elem(key ruleset.Key, keyLen int, end bool) {
	size := nlaHdrLen + elemKeyLen(keyLen)
	if end {
		size += nlaHdrLen + 4
	}
	if b.open && len(b.buf)-b.nestStart+size > maxNestLen {
		b.flush()
	}
	if !b.open {
		b.begin()
	}
	b.n++
	d := b.buf
	// As google/nftables does: list items numbered from 1, and NLA_F_NESTED on the flags attribute too.
	d = appendAttrHdr(d, size, b.n|unix.NLA_F_NESTED)
	if end {
		d = appendAttrHdr(d, nlaHdrLen+4, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED)
		d = binary.BigEndian.AppendUint32(d, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	d = appendAttrHdr(d, elemKeyLen(keyLen), unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
	d = appendAttrHdr(d, nlaHdrLen+keyLen, unix.NFTA_DATA_VALUE)
	if keyLen == 4 {
		d = binary.BigEndian.AppendUint32(d, uint32(key.Lo))
	} else {
		d = binary.BigEndian.AppendUint64(d, key.Hi)
		d = binary.BigEndian.AppendUint64(d, key.Lo)
	}
	b.buf = d
}

// begin opens an element message: netlink and nfgen headers, the set's name, ID and table, and the element
// list.
func (b *batch) begin() {
	b.open, b.n, b.msgStart = true, 0, len(b.buf)
	what := "add elements to set " + b.set
	if b.msgType&0xff == unix.NFT_MSG_DELSETELEM {
		what = "delete elements from set " + b.set
	}
	b.msgs = append(b.msgs, batchMsg{offset: b.msgStart, what: what})
	d := appendNlmsgHdr(b.buf, 0, b.msgType, b.msgFlags, 0)
	d = append(d, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	d = appendAttrString(d, unix.NFTA_SET_ELEM_LIST_SET, b.set)
	d = appendAttrU32(d, unix.NFTA_SET_ELEM_LIST_SET_ID, b.setID) // 0 unless the set is new in this batch
	d = appendAttrString(d, unix.NFTA_SET_ELEM_LIST_TABLE, b.table)
	b.nestStart = len(d)
	b.buf = appendAttrHdr(d, 0, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
}

// flush closes the open element message, if any, writing the lengths it now knows.
func (b *batch) flush() {
	if !b.open {
		return
	}
	binary.NativeEndian.PutUint16(b.buf[b.nestStart:], uint16(len(b.buf)-b.nestStart))
	binary.NativeEndian.PutUint32(b.buf[b.msgStart:], uint32(len(b.buf)-b.msgStart))
	b.open = false
}

// grow makes room for n more bytes at once, so that a large batch is not copied while it grows.
func (b *batch) grow(n int) {
	if cap(b.buf)-len(b.buf) < n {
		d := make([]byte, len(b.buf), len(b.buf)+n)
		copy(d, b.buf)
		b.buf = d
	}
}

// appendNlmsgHdr appends a netlink message header; length is filled in later when 0.
func appendNlmsgHdr(b []byte, length uint32, typ, flags uint16, seq uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, length)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	return binary.NativeEndian.AppendUint32(b, 0) // port ID: the kernel's
}

// appendAttrHdr appends a netlink attribute header. length includes the header, not the padding.
func appendAttrHdr(b []byte, length int, typ uint16) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(length))
	return binary.NativeEndian.AppendUint16(b, typ)
}

// appendAttrBytes appends an attribute holding v, padded to 4 bytes.
func appendAttrBytes(b []byte, typ uint16, v []byte) []byte {
	b = appendAttrHdr(b, nlaHdrLen+len(v), typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendAttrString appends a NUL-terminated string attribute, padded to 4 bytes.
func appendAttrString(b []byte, typ uint16, s string) []byte {
	b = appendAttrHdr(b, nlaHdrLen+len(s)+1, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendAttrU32 and appendAttrU64 append a big-endian number attribute, as nf_tables takes them.
func appendAttrU32(b []byte, typ uint16, v uint32) []byte {
	return binary.BigEndian.AppendUint32(appendAttrHdr(b, nlaHdrLen+4, typ), v)
}

func appendAttrU64(b []byte, typ uint16, v uint64) []byte {
	return binary.BigEndian.AppendUint64(appendAttrHdr(b, nlaHdrLen+8, typ), v)
}

// nest appends a nested attribute whose content fill writes.
func nest(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = fill(appendAttrHdr(b, 0, typ))
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	return b
}
