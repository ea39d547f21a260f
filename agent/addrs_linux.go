package agent

import (
	"context"
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

// InterfaceAddrs resolves snatToInterface on this node: the interface's primary address of each family,
// the first global-scope address in the kernel's order that is neither secondary (nor, for IPv6, temporary),
// tentative, deprecated nor failed duplicate address detection. A family with none has the zero Addr (and
// keeps masquerade); a missing interface is an error, and both families keep masquerade.
func InterfaceAddrs(name string) (ruleset.InterfaceAddrs, error) {
	out := ruleset.InterfaceAddrs{Name: name}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return out, fmt.Errorf("snatToInterface %s: %w", name, err)
	}
	rib, err := syscall.NetlinkRIB(unix.RTM_GETADDR, unix.AF_UNSPEC)
	if err != nil {
		return out, fmt.Errorf("snatToInterface %s: list addresses: %w", name, err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return out, fmt.Errorf("snatToInterface %s: list addresses: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		a, ok := primary(m, ifi.Index)
		switch {
		case !ok:
		case a.Is4() && !out.V4.IsValid():
			out.V4 = a
		case a.Is6() && !out.V6.IsValid():
			out.V6 = a
		}
	}
	return out, nil
}

// primary is the address of one RTM_NEWADDR message when it is a primary global address of interface index.
func primary(m syscall.NetlinkMessage, index int) (netip.Addr, bool) {
	family, scope := m.Data[0], m.Data[3]
	flags := uint32(m.Data[2])
	if int(nativeUint32(m.Data[4:8])) != index || scope != unix.RT_SCOPE_UNIVERSE {
		return netip.Addr{}, false
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(&m)
	if err != nil {
		return netip.Addr{}, false
	}
	var addr, local netip.Addr
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_ADDRESS:
			addr, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_FLAGS:
			if len(at.Value) == 4 {
				flags = nativeUint32(at.Value)
			}
		}
	}
	const unusable = unix.IFA_F_SECONDARY | unix.IFA_F_TENTATIVE | unix.IFA_F_DEPRECATED | unix.IFA_F_DADFAILED
	if flags&unusable != 0 {
		return netip.Addr{}, false
	}
	if family == unix.AF_INET && local.IsValid() { // IFA_ADDRESS is the peer's on a point-to-point link
		addr = local
	}
	return addr.Unmap(), addr.IsValid()
}

func nativeUint32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

// WatchAddresses calls changed after every change of an address on this node (rtnetlink's address
// notifications), until ctx is done. Notifications lost to an overrun are a change too.
func WatchAddresses(ctx context.Context, changed func()) error {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR})
	if err != nil {
		return fmt.Errorf("address notifications: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	for {
		msgs, err := c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			changed()
			continue
		}
		if err != nil {
			return fmt.Errorf("address notifications: %w", err)
		}
		if len(msgs) > 0 {
			changed()
		}
	}
}
