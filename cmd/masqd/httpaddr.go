package main

import (
	"net"
	"net/netip"
	"strings"
)

// bracketIPv6 writes an IPv6 host in an address as HOST:PORT requires it, [HOST]:PORT, when it was written
// bare: a DaemonSet passes --http-address=$(HOST_IP):9745 with HOST_IP from status.hostIP, which on an
// IPv6 node is an address like fd00::5, giving fd00::5:9745. The part after the last colon is taken as the
// port. Any other address is returned as it is, for net.Listen to accept or refuse.
func bracketIPv6(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil || strings.Count(addr, ":") < 2 {
		return addr
	}
	i := strings.LastIndexByte(addr, ':')
	host, port := addr[:i], addr[i+1:]
	if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
		return addr
	}
	return net.JoinHostPort(host, port)
}
