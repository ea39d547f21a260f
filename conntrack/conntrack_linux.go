package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// Conn reaches the conntrack table of one network namespace.
type Conn struct{ netns int }

// NewConn returns a Conn for the network namespace behind netnsFD, or the caller's namespace when it is 0.
func NewConn(netnsFD int) *Conn { return &Conn{netns: netnsFD} }

// Result is what one Flush did.
type Result struct {
	// Seen is the number of entries in the table when it was dumped (both families).
	Seen int
	// Deleted4 and Deleted6 are the entries deleted, by family.
	Deleted4, Deleted6 int
	// Gone are entries that matched but had already gone when they were deleted (the flow ended).
	Gone int
}

// Deleted is the entries deleted, both families.
func (r Result) Deleted() int { return r.Deleted4 + r.Deleted6 }

// Flush deletes every conntrack entry whose flow the postrouting rule now decides differently from when it
// was translated: its original source is not one of local (this host's addresses, which the flip leaves
// alone: the node's own connections keep their entries), and its destination as the rule saw it is in
// flipped4 or flipped6 (normalized, as ruleset.Flipped returns them) and not one of local (the rule never
// masquerades traffic to the host itself). The destination the rule saw is the reply direction's source:
// the original destination, or the address a DNAT (a Service) sent the flow to.
//
// The table is read as a stream, a socket buffer at a time, keeping only the entries to delete: a node's
// 100,000 entries cost no more memory than a handful (BenchmarkFlush). An entry that ends between the dump
// and its deletion is counted in Gone, not an error. Flush stops at the first other error and returns what
// it did until then.
func (c *Conn) Flush(flipped4, flipped6 []ruleset.Interval, local []netip.Addr) (Result, error) {
	var r Result
	if len(flipped4) == 0 && len(flipped6) == 0 {
		return r, nil
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netns})
	if err != nil {
		return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: dial: %w", err))
	}
	defer conn.Close()
	isLocal := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		isLocal[a.Unmap()] = true
	}
	var doomed []ctEntry
	err = dump(conn, func(e ctEntry) {
		r.Seen++
		if Matches(e.src, e.ruleDst, flipped4, flipped6, isLocal) {
			doomed = append(doomed, e)
		}
	})
	if err != nil {
		return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: dump: %w", err))
	}
	for _, e := range doomed {
		switch _, err := conn.Execute(e.deleteMessage()); {
		case errors.Is(err, unix.ENOENT):
			r.Gone++
		case err != nil:
			return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: delete %s -> %s: %w", e.src, e.ruleDst, err))
		case e.src.Is4():
			r.Deleted4++
		default:
			r.Deleted6++
		}
	}
	return r, nil
}

// ctnetlink's numbers (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	subsysCTNetlink = 1
	msgCTGet        = 1
	msgCTDelete     = 2
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaID           = 12
	ctaZone         = 18
	ctaTupleIP      = 1
	ctaIPv4Src      = 1
	ctaIPv6Src      = 3
)

// ctEntry is what Flush keeps of a conntrack entry: the addresses it decides on, and what deletes exactly
// this entry (its original tuple as the kernel sent it, its ID, so that a new entry that took the tuple
// since the dump stays, and its zone).
type ctEntry struct {
	src, ruleDst netip.Addr
	family       uint8
	origTuple    []byte
	id           []byte // big-endian uint32, as sent
	zone         []byte // big-endian uint16, as sent; nil when the entry has none
}

// deleteMessage is the IPCTNL_MSG_CT_DELETE request for e.
func (e ctEntry) deleteMessage() netlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ctaTupleOrig|unix.NLA_F_NESTED, e.origTuple)
	ae.Bytes(ctaID, e.id)
	if e.zone != nil {
		ae.Bytes(ctaZone, e.zone)
	}
	attrs, _ := ae.Encode() // Bytes attributes cannot fail to encode
	return netlink.Message{
		Header: netlink.Header{Type: subsysCTNetlink<<8 | msgCTDelete, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append([]byte{e.family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// dump reads the conntrack table of both families, calling fn for each entry as its socket buffer arrives.
// The entry's byte slices are copies: fn may keep it.
func dump(conn *netlink.Conn, fn func(ctEntry)) error {
	req := netlink.Message{
		Header: netlink.Header{Type: subsysCTNetlink<<8 | msgCTGet, Flags: netlink.Request | netlink.Dump},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	if _, err := conn.Send(req); err != nil {
		return err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10) // larger than any one read of a dump (the kernel fills a page-sized skb)
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
						return syscall.Errno(-code)
					}
				}
				continue
			}
			if len(m.Data) < 4 {
				continue
			}
			e, ok, err := parseEntry(m.Data[0], m.Data[4:])
			if err != nil {
				return err
			}
			if ok {
				fn(e)
			}
		}
	}
}

// parseEntry reads one entry's attributes (after the nfgenmsg header); ok is false for an entry without
// both tuples' addresses.
func parseEntry(family uint8, b []byte) (e ctEntry, ok bool, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, false, err
	}
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			e.origTuple = ad.Bytes() // Bytes copies
			e.src, err = tupleSource(e.origTuple)
		case ctaTupleReply:
			e.ruleDst, err = tupleSource(ad.Bytes())
		case ctaID:
			e.id = ad.Bytes()
		case ctaZone:
			e.zone = ad.Bytes()
		}
		if err != nil {
			return e, false, err
		}
	}
	if err := ad.Err(); err != nil {
		return e, false, err
	}
	e.family = family
	return e, e.src.IsValid() && e.ruleDst.IsValid() && e.id != nil, nil
}

// tupleSource is the source address of a CTA_TUPLE_* attribute's contents.
func tupleSource(b []byte) (netip.Addr, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return netip.Addr{}, err
	}
	var src netip.Addr
	for ad.Next() {
		if ad.Type() != ctaTupleIP {
			continue
		}
		ip, err := netlink.NewAttributeDecoder(ad.Bytes())
		if err != nil {
			return netip.Addr{}, err
		}
		for ip.Next() {
			if t := ip.Type(); t == ctaIPv4Src || t == ctaIPv6Src {
				src, _ = netip.AddrFromSlice(ip.Bytes())
			}
		}
		if err := ip.Err(); err != nil {
			return netip.Addr{}, err
		}
	}
	return src, ad.Err()
}

// Matches reports whether Flush deletes the entry of a flow from src whose destination, as the
// postrouting rule saw it, is dst.
func Matches(src, dst netip.Addr, flipped4, flipped6 []ruleset.Interval, local map[netip.Addr]bool) bool {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() || isHost(src, local) || isHost(dst, local) {
		return false
	}
	if dst.Is4() {
		return ruleset.InSet(flipped4, dst)
	}
	return ruleset.InSet(flipped6, dst)
}

// isHost reports whether a is this host's: one of its addresses, or loopback (127.0.0.0/8 is all local).
func isHost(a netip.Addr, local map[netip.Addr]bool) bool { return a.IsLoopback() || local[a] }

// HostAddrs lists the addresses of the caller's network namespace's interfaces, for Flush.
func HostAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("conntrack: list this host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
