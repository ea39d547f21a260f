package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// commit sends b as one batch, which the kernel applies as one transaction or not at all, and returns the
// ruleset generation the transaction made. A batch is sent with genID, the generation it was computed at:
// the kernel refuses it (ERESTART) if anyone has committed since, and when it takes it, the transaction
// made generation genID+1, exactly. With genID 0 the batch is sent without it and the generation is not
// known (0 is returned). An empty batch sends nothing and returns genID.
func (s *nlSock) commit(b *batch, genID uint32) (uint32, error) {
	b.flush()
	if b.empty() {
		return genID, nil
	}
	what := make(map[uint32]string, len(b.msgs)+1)
	beginSeq := s.nextSeq()
	begin := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(begin[2:], unix.NFNL_SUBSYS_NFTABLES)
	if genID != 0 {
		begin = appendAttrU32(begin, unix.NFNL_BATCH_GENID, genID)
	}
	head := appendNlmsgHdr(nil, uint32(nlmsgHdrLen+len(begin)), unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, beginSeq)
	head = append(head, begin...)
	what[beginSeq] = "batch"
	buf := b.buf
	for _, m := range b.msgs {
		seq := s.nextSeq()
		putSeq(buf, m.offset, seq)
		what[seq] = m.what
	}
	lastSeq := s.seq
	// Element messages ask for no acknowledgement (the kernel reports only their errors), but the last
	// message does: its reply, after every other, marks the end of the kernel's answer.
	off := b.msgs[len(b.msgs)-1].offset + 6
	binary.NativeEndian.PutUint16(buf[off:], binary.NativeEndian.Uint16(buf[off:])|unix.NLM_F_ACK)
	end := appendNlmsgHdr(nil, nlmsgHdrLen+4, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, s.nextSeq())
	end = binary.BigEndian.AppendUint16(append(end, unix.AF_UNSPEC, unix.NFNETLINK_V0), unix.NFNL_SUBSYS_NFTABLES)

	if err := s.send(head, buf, end); err != nil {
		return 0, err
	}
	var errs []error
	err := s.receive(func(m syscall.NetlinkMessage) bool {
		if m.Header.Type != unix.NLMSG_ERROR {
			return false
		}
		seq, err := ackError(m)
		if seq < beginSeq || seq > lastSeq {
			return false // left over from something that failed earlier
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what[seq], err))
		}
		return seq == lastSeq || seq == beginSeq && err != nil
	})
	if err != nil {
		return 0, err
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if genID == 0 {
		return 0, nil
	}
	if genID++; genID == 0 { // the kernel skips 0 when the counter wraps
		genID = 1
	}
	return genID, nil
}

// putSeq writes the sequence number of the message whose header is at offset in buf.
func putSeq(buf []byte, offset int, seq uint32) { binary.NativeEndian.PutUint32(buf[offset+8:], seq) }

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

// TableExists reports whether table name of family (an NFPROTO_ number) exists, without reading it, in
// the network namespace behind netnsFD (0: the caller's). It needs CAP_NET_ADMIN.
func TableExists(netnsFD int, family byte, name string) (bool, error) {
	s, err := dialSock(netnsFD)
	if err != nil {
		return false, err
	}
	defer s.close()
	err = s.request(unix.NFT_MSG_GETTABLE, family, appendAttrString(nil, unix.NFTA_TABLE_NAME, name), func(syscall.NetlinkMessage) {})
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("nftables: get table %s: %w", name, err)
	}
	return true, nil
}

// tableExists reports whether table inet masqd exists, without reading it.
func (s *nlSock) tableExists() (bool, error) {
	attrs := appendAttrString(nil, unix.NFTA_TABLE_NAME, ruleset.TableName)
	err := s.request(unix.NFT_MSG_GETTABLE, unix.NFPROTO_INET, attrs, func(syscall.NetlinkMessage) {})
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("nftables: get table inet %s: %w", ruleset.TableName, err)
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
