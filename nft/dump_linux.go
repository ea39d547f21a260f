package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// dumpElements reads a set's elements with one netlink dump.
//
// The kernel walks an interval set from its first element again for every message of a dump, skipping what
// it already sent, so a dump costs (messages × elements). It sizes each message by the largest read buffer
// the socket has used (up to 32 KiB). mdlayher/netlink reads into a page-sized buffer, which makes dump
// messages of 4 KiB: a 100,000-interval set then takes seconds. Reading into a 64 KiB buffer gives 32 KiB
// messages and eight times fewer walks.
func (c *Conn) dumpElements(set string) ([]nftables.SetElement, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netns})
	if err != nil {
		return nil, fmt.Errorf("dial netlink: %w", err)
	}
	defer nl.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(ruleset.TableName + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	if _, err := nl.Send(req); err != nil {
		return nil, fmt.Errorf("send dump request: %w", err)
	}
	raw, err := nl.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 64<<10)
	var out []nftables.SetElement
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("receive dump: %w", rerr)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("parse dump: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("dump set %s: %w", set, unix.Errno(-errno))
					}
				}
				return out, nil
			}
			if len(m.Data) < 4 {
				continue
			}
			if out, err = appendElements(out, m.Data[4:]); err != nil {
				return nil, fmt.Errorf("decode set %s: %w", set, err)
			}
		}
	}
}

// appendElements decodes one NEWSETELEM message's element list: keys and interval-end flags, which is all
// masqd's sets hold.
func appendElements(out []nftables.SetElement, b []byte) ([]nftables.SetElement, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return out, err
	}
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				var e nftables.SetElement
				list.Nested(func(elem *netlink.AttributeDecoder) error {
					for elem.Next() {
						switch elem.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							elem.Nested(func(key *netlink.AttributeDecoder) error {
								for key.Next() {
									if key.Type() == unix.NFTA_DATA_VALUE {
										e.Key = key.Bytes()
									}
								}
								return nil
							})
						case unix.NFTA_SET_ELEM_FLAGS:
							e.IntervalEnd = binary.BigEndian.Uint32(elem.Bytes())&unix.NFT_SET_ELEM_INTERVAL_END != 0
						}
					}
					return nil
				})
				if _, ok := netip.AddrFromSlice(e.Key); !ok {
					return fmt.Errorf("element key of %d bytes", len(e.Key))
				}
				out = append(out, e)
			}
			return nil
		})
	}
	return out, ad.Err()
}
