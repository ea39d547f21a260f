package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// generation returns the kernel's nftables ruleset generation: a counter that every committed transaction,
// anyone's, moves on. google/nftables v0.3.0 has no call for it.
func (c *Conn) generation() (uint32, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.netns})
	if err != nil {
		return 0, fmt.Errorf("nftables: dial netlink: %w", err)
	}
	defer nl.Close()
	msgs, err := nl.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("nftables: get ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("nftables: decode ruleset generation: %w", err)
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return binary.BigEndian.Uint32(ad.Bytes()), nil
			}
		}
	}
	return 0, fmt.Errorf("nftables: get ruleset generation: no generation in the kernel's reply")
}
