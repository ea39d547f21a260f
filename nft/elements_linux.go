package nft

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Set elements are the bulk of an apply: 100,000 prefixes per family make 400,000 kernel elements.
// google/nftables v0.3.0 builds each element as three levels of []netlink.Attribute, marshals each level
// into a new slice and copies the message again to send it (about 10 allocations and 150 bytes copied
// per element, and the garbage collector's time on top). masqd writes NEWSETELEM and DELSETELEM messages
// straight into one buffer instead, byte for byte what google/nftables would send for the same elements,
// and txn sends them in the same batch as google/nftables' other messages.

const (
	nlmsgHdrLen = unix.SizeofNlMsghdr // 16
	nlaHdrLen   = unix.SizeofNlAttr   // 4
	// maxNestLen bounds a message's element list: a netlink attribute's length is 16 bits, and past it
	// the kernel would read a truncated list. It allows 4,095 elements per message at the smallest.
	maxNestLen = 0xffff
)

// elemWriter appends set element messages to buf. Each message names the set (and its batch-local ID, for
// a set created in the same batch) and holds as many elements as fit one element list attribute.
type elemWriter struct {
	buf []byte
	// msgs records each message appended: its header's offset in buf and what it does, for errors.
	msgs []elemMsg

	// The message being written, if open.
	open      bool
	msgType   uint16
	msgFlags  uint16
	set       string
	setID     uint32
	msgStart  int // offset of the message header in buf
	nestStart int // offset of the element list attribute header in buf
	n         uint16
}

// elemMsg is one element message in elemWriter's buffer.
type elemMsg struct {
	offset int    // of its netlink header
	del    bool   // DELSETELEM, not NEWSETELEM
	set    string // the set it changes
}

// writeIntervals appends the messages that add (or, with del, delete) the elements of ivs in set:
// the elements the kernel stores for each interval (see intervalElements), in order.
func (w *elemWriter) writeIntervals(set string, setID uint32, del bool, ivs []Interval) {
	if len(ivs) == 0 {
		return
	}
	msgType, flags := uint16(unix.NFT_MSG_NEWSETELEM), uint16(unix.NLM_F_REQUEST|unix.NLM_F_CREATE)
	if del {
		msgType, flags = unix.NFT_MSG_DELSETELEM, unix.NLM_F_REQUEST
	}
	w.flush()
	w.msgType, w.msgFlags, w.set, w.setID = unix.NFNL_SUBSYS_NFTABLES<<8|msgType, flags, set, setID
	w.grow(intervalsLen(ivs))
	keyLen := int(ivs[0].bitLen) / 8
	for _, iv := range ivs {
		w.elem(iv.first, keyLen, false)
		// The end element is the address after the interval; an interval that reaches the family's last
		// address has none.
		if iv.last != hostMask(int(iv.bitLen)) {
			w.elem(iv.last.next(), keyLen, true)
		}
	}
	w.flush()
}

// intervalsLen is about the encoded size of ivs' elements and message headers.
func intervalsLen(ivs []Interval) int {
	per := 2*(nlaHdrLen+elemKeyLen(int(ivs[0].bitLen)/8)) + nlaHdrLen + 4 // a start and an end element
	n := len(ivs) * per
	return n + (n/maxNestLen+1)*(nlmsgHdrLen+4+64)
}

// elemKeyLen is the encoded length of a start element's attributes (without the element's own header):
// NFTA_SET_ELEM_KEY holding NFTA_DATA_VALUE.
func elemKeyLen(keyLen int) int { return 2*nlaHdrLen + keyLen }

// elem appends one element whose key is the keyLen (4 or 16) low bytes of key, starting a message when none
// is open or the open one is full.
func (w *elemWriter) elem(key u128, keyLen int, end bool) {
	size := nlaHdrLen + elemKeyLen(keyLen)
	if end {
		size += nlaHdrLen + 4
	}
	if w.open && len(w.buf)-w.nestStart+size > maxNestLen {
		w.flush()
	}
	if !w.open {
		w.begin()
	}
	w.n++
	b := w.buf
	// As google/nftables does: list items numbered from 1, and NLA_F_NESTED on the flags attribute too.
	b = appendAttrHdr(b, size, w.n|unix.NLA_F_NESTED)
	if end {
		b = appendAttrHdr(b, nlaHdrLen+4, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED)
		b = binary.BigEndian.AppendUint32(b, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	b = appendAttrHdr(b, elemKeyLen(keyLen), unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
	b = appendAttrHdr(b, nlaHdrLen+keyLen, unix.NFTA_DATA_VALUE)
	if keyLen == 4 {
		b = binary.BigEndian.AppendUint32(b, uint32(key.lo))
	} else {
		b = binary.BigEndian.AppendUint64(b, key.hi)
		b = binary.BigEndian.AppendUint64(b, key.lo)
	}
	w.buf = b
}

// begin opens a message: netlink and nfgen headers, the set's name, ID and table, and the element list.
func (w *elemWriter) begin() {
	w.open, w.n, w.msgStart = true, 0, len(w.buf)
	w.msgs = append(w.msgs, elemMsg{offset: w.msgStart, del: w.msgType&0xff == unix.NFT_MSG_DELSETELEM, set: w.set})
	b := appendNlmsgHdr(w.buf, 0, w.msgType, w.msgFlags, 0)
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b = appendAttrString(b, unix.NFTA_SET_ELEM_LIST_SET, w.set)
	b = appendAttrHdr(b, nlaHdrLen+4, unix.NFTA_SET_ELEM_LIST_SET_ID)
	b = binary.BigEndian.AppendUint32(b, w.setID)
	b = appendAttrString(b, unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	w.nestStart = len(b)
	w.buf = appendAttrHdr(b, 0, unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
}

// flush closes the open message, if any, writing the lengths it now knows.
func (w *elemWriter) flush() {
	if !w.open {
		return
	}
	binary.NativeEndian.PutUint16(w.buf[w.nestStart:], uint16(len(w.buf)-w.nestStart))
	binary.NativeEndian.PutUint32(w.buf[w.msgStart:], uint32(len(w.buf)-w.msgStart))
	w.open = false
}

// grow makes room for n more bytes at once, so that a large batch is not copied while it grows.
func (w *elemWriter) grow(n int) {
	if cap(w.buf)-len(w.buf) < n {
		b := make([]byte, len(w.buf), len(w.buf)+n)
		copy(b, w.buf)
		w.buf = b
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
