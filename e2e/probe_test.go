//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// probeTimeout bounds one probe that is expected to succeed.
const probeTimeout = 3 * time.Second

// startEchoServers starts a TCP and a UDP echo server inside ns on [::] (dual-stack, so IPv4 peers arrive as
// ::ffff:a.b.c.d) and returns their ports. Both answer with the peer's source IP as text: TCP writes it and a
// newline, then closes; UDP replies to each datagram, from the address the datagram was sent to. The servers
// stop when the test ends.
func startEchoServers(t testing.TB, ns *NS) (tcpPort, udpPort int) {
	t.Helper()
	var (
		ln net.Listener
		pc net.PacketConn
	)
	err := ns.Do(func() error {
		var err error
		ln, err = dualStack(false).Listen(context.Background(), "tcp6", "[::]:0")
		if err != nil {
			return err
		}
		pc, err = dualStack(true).ListenPacket(context.Background(), "udp6", "[::]:0")
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("echo servers in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
	})
	go serveTCP(ln)
	go serveUDP(pc.(*net.UDPConn))
	return ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
}

// dualStack returns a ListenConfig for an AF_INET6 socket that also accepts IPv4. Go makes "tcp6"/"udp6"
// sockets v6-only; this turns that off explicitly rather than rely on Go's probe of the host namespace.
// With pktinfo it also asks for each datagram's destination address (IPV6_PKTINFO, given for IPv4 too).
func dualStack(pktinfo bool) *net.ListenConfig {
	return &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
			if serr == nil && pktinfo {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		return errors.Join(err, serr)
	}}
}

func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by the test's cleanup
		}
		peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		c.SetWriteDeadline(time.Now().Add(probeTimeout))
		fmt.Fprintf(c, "%s\n", peer)
		c.Close()
	}
}

// serveUDP replies from the datagram's destination address: with a wildcard socket the kernel would otherwise
// pick the outgoing interface's address, the client's connected socket would drop the reply, and conntrack
// would not match it to the original flow.
func serveUDP(c *net.UDPConn) {
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	for {
		_, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return // closed by the test's cleanup
		}
		var reply []byte
		if dst, ok := pktinfoDst(oob[:oobn]); ok {
			reply = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: dst.As16()})
		}
		c.WriteMsgUDPAddrPort([]byte(from.Addr().Unmap().String()), reply, from)
	}
}

// pktinfoDst returns the destination address from an IPV6_PKTINFO control message (IPv4 as ::ffff:a.b.c.d).
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 16 {
			return netip.AddrFrom16([16]byte(m.Data[:16])), true
		}
	}
	return netip.Addr{}, false
}

// sourceSeenTCP connects from inside the namespace from to dst:port and returns the source address the echo
// server saw. The whole exchange is bounded by timeout; a dropped SYN is an error whose Timeout() is true.
func sourceSeenTCP(from *NS, dst netip.Addr, port int, timeout time.Duration) (netip.Addr, error) {
	return sourceSeenTCPFrom(from, netip.Addr{}, dst, port, timeout)
}

// sourceSeenTCPFrom is sourceSeenTCP from the local address src (the zero Addr: the one routing picks), as a
// workload bound to one of the namespace's addresses sends.
func sourceSeenTCPFrom(from *NS, src, dst netip.Addr, port int, timeout time.Duration) (netip.Addr, error) {
	var line string
	err := from.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("tcp from %s %s to %s: %w", from.Name, src, dst, err)
	}
	return parseSeen(line)
}

// sourceSeenUDP sends a datagram from inside the namespace from to dst:port and returns the source address
// the echo server saw. Each call uses a fresh socket, so a fresh source port and a new conntrack entry. The
// datagram is resent every 200ms until a reply arrives or timeout passes.
func sourceSeenUDP(from *NS, dst netip.Addr, port int, timeout time.Duration) (netip.Addr, error) {
	return sourceSeenUDPFrom(from, netip.AddrPort{}, dst, port, timeout)
}

// fromPort is source port port on the address routing picks, for sourceSeenUDPFrom.
func fromPort(port int) netip.AddrPort { return netip.AddrPortFrom(netip.Addr{}, uint16(port)) }

// sourceSeenUDPFrom is sourceSeenUDP from the local address and port src (each zero when unset: the one
// routing picks, one the kernel picks).
func sourceSeenUDPFrom(from *NS, src netip.AddrPort, dst netip.Addr, port int, timeout time.Duration) (netip.Addr, error) {
	var reply string
	err := from.Do(func() error {
		var laddr *net.UDPAddr
		if src.Addr().IsValid() || src.Port() != 0 {
			laddr = &net.UDPAddr{Port: int(src.Port())}
			if src.Addr().IsValid() {
				laddr.IP = src.Addr().AsSlice()
			}
		}
		c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		if err != nil {
			return err
		}
		defer c.Close()
		deadline := time.Now().Add(timeout)
		buf := make([]byte, 100)
		for {
			if _, err := c.Write([]byte("probe")); err != nil {
				return err
			}
			wait := time.Now().Add(200 * time.Millisecond)
			if wait.After(deadline) {
				wait = deadline
			}
			c.SetReadDeadline(wait)
			n, err := c.Read(buf)
			if err == nil {
				reply = string(buf[:n])
				return nil
			}
			retry := isTimeout(err) || errors.Is(err, unix.ECONNREFUSED)
			if !retry || time.Now().After(deadline) {
				return err
			}
		}
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("udp from %s %s to %s: %w", from.Name, src, dst, err)
	}
	return parseSeen(reply)
}

func parseSeen(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("echo server replied %q: %w", s, err)
	}
	return a.Unmap(), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// assertSource sends proto ("tcp" or "udp") from the lab's pod to dst and fails the test unless the echo
// server there (the node's for node addresses, the outside's otherwise) saw the source address want.
func assertSource(t *testing.T, lab *Lab, proto string, dst, want netip.Addr) {
	t.Helper()
	assertSourceFrom(t, lab, lab.Pod, netip.Addr{}, proto, dst, want)
}

// assertSourceFrom is assertSource sent from the namespace from, bound to its local address src (the zero
// Addr: the one routing picks), as a workload bound to one of its addresses sends.
func assertSourceFrom(t *testing.T, lab *Lab, from *NS, src netip.Addr, proto string, dst, want netip.Addr) {
	t.Helper()
	ns, ports := lab.echoFor(dst)
	where := "outside"
	if ns == lab.Node {
		where = "node"
	}
	var (
		got netip.Addr
		err error
	)
	switch proto {
	case "tcp":
		got, err = sourceSeenTCPFrom(from, src, dst, ports.tcp, probeTimeout)
	case "udp":
		got, err = sourceSeenUDPFrom(from, netip.AddrPortFrom(src, 0), dst, ports.udp, probeTimeout)
	default:
		t.Fatalf("assertSource: proto %q, want tcp or udp", proto)
	}
	if err != nil {
		t.Errorf("%s from %s %s to %s: %v", proto, from.Name, src, dst, err)
		return
	}
	if got != want {
		t.Errorf("%s from %s %s to %s: %s saw %s, want %s", proto, from.Name, src, dst, where, got, want)
	}
}
