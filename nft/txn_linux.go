package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// txn builds and sends an Apply's transactions. google/nftables encodes the table, set, chain and rule
// messages (through nc, whose Flush only hands them to txn), masqd the set elements (elems, see
// elemWriter); commit sends them all in one netlink batch, google/nftables' messages first, on Conn's
// socket. nc's reads (the sets, chains and rules of a table that is there) go through to the kernel on
// the same socket, by way of a MasqPortsTransport, whose repair of masquerade flags commit also applies
// to the batch's rules.
type txn struct {
	sock  *nlSock
	nc    *nftables.Conn
	ports *MasqPortsTransport

	captured []netlink.Message // nc's messages since the last commit
	acks     []netlink.Header  // acknowledgements nc's Flush still waits for
	elems    elemWriter
	// genID, when not 0, makes the kernel refuse the batch (ERESTART) unless the ruleset generation is
	// still genID: nobody has committed since masqd computed the batch. A commit that succeeds made
	// generation genID+1, exactly, and commit moves genID on to it for the next batch of the transaction.
	genID uint32
}

// begin starts an Apply's transactions on c's socket. randomFully is the masquerade flag that the repair
// of port-range masquerades adds (see MasqPortsTransport).
func (c *Conn) begin(s *nlSock, randomFully bool) (*txn, error) {
	t := &txn{sock: s, ports: &MasqPortsTransport{netns: c.netns, randomFully: randomFully, conn: s.conn}}
	nc, err := nftables.New(nftables.WithTestDial(t.roundTrip))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t.nc = nc
	return t, nil
}

// roundTrip is nc's transport. A batch (nc.Flush) is kept for commit and acknowledged at once; anything
// else goes to the kernel.
func (t *txn) roundTrip(req []netlink.Message) ([]netlink.Message, error) {
	switch {
	case len(req) >= 2 && req[0].Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN):
		for _, m := range req[1 : len(req)-1] {
			t.captured = append(t.captured, m)
			if m.Header.Flags&netlink.Acknowledge != 0 {
				t.acks = append(t.acks, m.Header)
			}
		}
		return nil, nil
	case req == nil && len(t.acks) > 0:
		h := t.acks[0]
		t.acks = t.acks[1:]
		ack := netlink.Message{
			Header: netlink.Header{Type: netlink.Error, Sequence: h.Sequence, PID: nltest.PID},
			Data:   make([]byte, 4+nlmsgHdrLen), // error 0, and the request's header
		}
		return []netlink.Message{ack}, nil
	}
	return t.ports.roundTrip(req)
}

// addElements queues the elements of ivs into set s.
func (t *txn) addElements(s *nftables.Set, ivs []Interval) {
	t.elems.writeIntervals(s.Name, s.ID, false, ivs)
}

// deleteElements queues the removal of the elements of ivs from set s.
func (t *txn) deleteElements(s *nftables.Set, ivs []Interval) {
	t.elems.writeIntervals(s.Name, s.ID, true, ivs)
}

// commit sends everything queued since the last commit as one batch, which the kernel applies as one
// transaction or not at all, and returns the ruleset generation the transaction made (0 when the batch
// was sent without genID, as then it is not known). With nothing queued it sends nothing and returns the
// current generation.
func (t *txn) commit() (uint32, error) {
	if err := t.nc.Flush(); err != nil { // only hands nc's messages to roundTrip
		return 0, fmt.Errorf("encode batch: %w", err)
	}
	captured, elems := t.captured, t.elems
	t.captured, t.acks, t.elems = nil, nil, elemWriter{}
	elems.flush()
	if len(captured) == 0 && len(elems.msgs) == 0 {
		return t.sock.generation()
	}
	s := t.sock
	what := make(map[uint32]string, len(captured)+len(elems.msgs))

	// The batch: BEGIN (with the generation it was computed at), nc's messages, the element messages, END.
	size := 2 * (nlmsgHdrLen + 12)
	for _, m := range captured {
		size += nlmsgHdrLen + len(m.Data) + 64
	}
	head := make([]byte, 0, size)
	beginSeq := s.nextSeq()
	begin := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(begin[2:], unix.NFNL_SUBSYS_NFTABLES)
	if t.genID != 0 {
		begin = appendAttrHdr(begin, nlaHdrLen+4, unix.NFNL_BATCH_GENID)
		begin = binary.BigEndian.AppendUint32(begin, t.genID)
	}
	head = appendNlmsgHdr(head, uint32(nlmsgHdrLen+len(begin)), unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, beginSeq)
	head = append(head, begin...)
	what[beginSeq] = "batch"
	lastFlags := -1 // offset of the last message's flags
	for _, m := range captured {
		data := m.Data
		if m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE) {
			var err error
			if data, err = t.ports.repairRule(data); err != nil {
				return 0, fmt.Errorf("encode batch: %w", err)
			}
		}
		seq := s.nextSeq()
		what[seq] = describe(m.Header.Type, len(data) == 4)
		lastFlags = len(head) + 6
		head = appendNlmsgHdr(head, uint32(nlmsgHdrLen+len(data)), uint16(m.Header.Type), uint16(m.Header.Flags), seq)
		head = append(head, data...)
		for len(head)%4 != 0 {
			head = append(head, 0)
		}
	}
	buf := elems.buf
	for _, m := range elems.msgs {
		seq := s.nextSeq()
		binary.NativeEndian.PutUint32(buf[m.offset+8:], seq)
		what[seq] = m.String()
	}
	lastSeq := s.seq
	// Element messages ask for no acknowledgement (the kernel reports only their errors), but the last
	// message does: its reply, after every other, marks the end of the kernel's answer.
	if n := len(elems.msgs); n > 0 {
		off := elems.msgs[n-1].offset + 6
		binary.NativeEndian.PutUint16(buf[off:], binary.NativeEndian.Uint16(buf[off:])|unix.NLM_F_ACK)
	} else {
		binary.NativeEndian.PutUint16(head[lastFlags:], binary.NativeEndian.Uint16(head[lastFlags:])|unix.NLM_F_ACK)
	}
	end := appendNlmsgHdr(nil, nlmsgHdrLen+4, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, s.nextSeq())
	end = binary.BigEndian.AppendUint16(append(end, unix.AF_UNSPEC, unix.NFNETLINK_V0), unix.NFNL_SUBSYS_NFTABLES)

	if err := s.send(head, buf, end); err != nil {
		return 0, err
	}
	var errs []error
	err := s.receive(func(m syscall.NetlinkMessage) bool {
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			seq, err := ackError(m)
			if seq < beginSeq || seq > lastSeq {
				return false // left over from something that failed earlier
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what[seq], err))
			}
			return seq == lastSeq || seq == beginSeq && err != nil
		}
		return false
	})
	if err != nil {
		return 0, err
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if t.genID == 0 {
		// A batch sent without its generation: the one read now may already be someone else's, so
		// none is claimed (a Conn that remembers generation 0 compares in full next time).
		return 0, nil
	}
	if t.genID++; t.genID == 0 { // the kernel skips 0 when the counter wraps
		t.genID = 1
	}
	return t.genID, nil
}

func (m elemMsg) String() string {
	if m.del {
		return "delete elements from set " + m.set
	}
	return "add elements to set " + m.set
}

// describe names what a message of google/nftables' does, for errors. empty says it has no attributes.
func describe(t netlink.HeaderType, empty bool) string {
	switch t & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "add table"
	case unix.NFT_MSG_DELTABLE:
		return "delete table"
	case unix.NFT_MSG_NEWSET:
		return "add set"
	case unix.NFT_MSG_DELSET:
		return "delete set"
	case unix.NFT_MSG_DELSETELEM:
		return "flush set"
	case unix.NFT_MSG_NEWCHAIN:
		return "add chain"
	case unix.NFT_MSG_DELCHAIN:
		return "delete chain"
	case unix.NFT_MSG_NEWRULE:
		return "add rule"
	case unix.NFT_MSG_DELRULE:
		return "delete rule"
	}
	return fmt.Sprintf("message type %#x", uint16(t))
}

// nlSock is Conn's netlink socket to nf_tables. Conn keeps it open between Applies: closing a netfilter
// socket makes the kernel wait for the cleanup of the last commit (an RCU grace period, milliseconds),
// and that wait would otherwise be part of every Apply.
type nlSock struct {
	conn   *netlink.Conn
	raw    syscall.RawConn
	seq    uint32
	sndbuf int // the send buffer size set, 0 for the default
	rbuf   []byte
}

func dialSock(netns int) (*nlSock, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("nftables: dial netlink: %w", err)
	}
	// Extended acks make the kernel say which attribute it rejected; capped acks keep it from copying the
	// whole rejected message (up to 64 KiB of elements) into each error.
	_ = conn.SetOption(netlink.ExtendedAcknowledge, true)
	_ = conn.SetOption(netlink.CapAcknowledge, true)
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nftables: netlink raw conn: %w", err)
	}
	return &nlSock{conn: conn, raw: raw, rbuf: make([]byte, 64<<10)}, nil
}

func (s *nlSock) close() error { return s.conn.Close() }

func (s *nlSock) nextSeq() uint32 {
	s.seq++
	return s.seq
}

// send writes bufs to the kernel as one datagram: one netlink batch, however large.
func (s *nlSock) send(bufs ...[]byte) error {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n+4096 > s.sndbuf {
		// A datagram must fit the send buffer. The plain call is capped by net.core.wmem_max; with
		// CAP_NET_ADMIN the kernel lets us force it.
		size := max(n+64<<10, 1<<20)
		var serr error
		if err := s.raw.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size); serr != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
			}
		}); err != nil {
			return fmt.Errorf("nftables: set netlink send buffer: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("nftables: set netlink send buffer: %w", serr)
		}
		s.sndbuf = size
	}
	var serr error
	err := s.raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), bufs, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("nftables: send batch of %d bytes: %w", n, err)
	}
	return nil
}

// receive reads the kernel's messages and hands them to handle until it returns true. The kernel
// answers a request while it is being sent, so the answer is whole by the time receive starts.
func (s *nlSock) receive(handle func(m syscall.NetlinkMessage) (done bool)) error {
	for {
		var n int
		var rerr error
		if err := s.raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), s.rbuf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return fmt.Errorf("nftables: receive: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("nftables: receive: %w", rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(s.rbuf[:n])
		if err != nil {
			return fmt.Errorf("nftables: parse reply: %w", err)
		}
		for _, m := range msgs {
			if handle(m) {
				return nil
			}
		}
	}
}

// request sends one nf_tables request asking for an acknowledgement, hands the replies to handle, and
// returns the kernel's error for it.
func (s *nlSock) request(typ uint16, family byte, attrs []byte, handle func(syscall.NetlinkMessage)) error {
	seq := s.nextSeq()
	b := appendNlmsgHdr(nil, uint32(nlmsgHdrLen+4+len(attrs)), unix.NFNL_SUBSYS_NFTABLES<<8|typ, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq)
	b = append(b, family, unix.NFNETLINK_V0, 0, 0)
	b = append(b, attrs...)
	if err := s.send(b); err != nil {
		return err
	}
	var kerr error
	err := s.receive(func(m syscall.NetlinkMessage) bool {
		if m.Header.Seq != seq {
			return false // left over from something that failed earlier
		}
		if m.Header.Type == unix.NLMSG_ERROR {
			_, kerr = ackError(m)
			return true
		}
		handle(m)
		return false
	})
	if err != nil {
		return err
	}
	return kerr
}

// generation returns the kernel's nftables ruleset generation: a counter that every committed
// transaction, anyone's, moves on.
func (s *nlSock) generation() (uint32, error) {
	var gen uint32
	err := s.request(unix.NFT_MSG_GETGEN, unix.AF_UNSPEC, nil, func(m syscall.NetlinkMessage) {
		if m.Header.Type == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN {
			gen = genID(m.Data)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("nftables: get ruleset generation: %w", err)
	}
	if gen == 0 {
		return 0, fmt.Errorf("nftables: get ruleset generation: no generation in the kernel's reply")
	}
	return gen, nil
}

// tableExists reports whether table inet masqd exists, without reading it.
func (s *nlSock) tableExists() (bool, error) {
	attrs := appendAttrString(nil, unix.NFTA_TABLE_NAME, TableName)
	err := s.request(unix.NFT_MSG_GETTABLE, unix.NFPROTO_INET, attrs, func(syscall.NetlinkMessage) {})
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("nftables: get table inet %s: %w", TableName, err)
	}
	return true, nil
}

// genID decodes a NEWGEN message's generation; 0 if it has none.
func genID(data []byte) uint32 {
	if len(data) < 4 {
		return 0
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return 0
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID && len(ad.Bytes()) == 4 {
			return binary.BigEndian.Uint32(ad.Bytes())
		}
	}
	return 0
}

// ackError decodes an NLMSG_ERROR message: the sequence number of the request it answers, and the
// kernel's error (nil for an acknowledgement), with the kernel's explanation when it gave one.
func ackError(m syscall.NetlinkMessage) (seq uint32, err error) {
	data := m.Data
	if len(data) < 4+nlmsgHdrLen {
		return 0, fmt.Errorf("short netlink error message")
	}
	seq = binary.NativeEndian.Uint32(data[4+8:])
	errno := -int32(binary.NativeEndian.Uint32(data))
	if errno == 0 {
		return seq, nil
	}
	err = unix.Errno(errno)
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 {
		return seq, err
	}
	// The request's header, and unless the kernel capped the reply the rest of the request, then the
	// extended ack attributes.
	off := 4 + nlmsgHdrLen
	if m.Header.Flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + (int(binary.NativeEndian.Uint32(data[4:]))+3)&^3
	}
	if off > len(data) {
		return seq, err
	}
	ad, derr := netlink.NewAttributeDecoder(data[off:])
	if derr != nil {
		return seq, err
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			if msg := ad.String(); msg != "" {
				return seq, fmt.Errorf("%s: %w", msg, err)
			}
		}
	}
	return seq, err
}
