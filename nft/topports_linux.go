package nft

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// MasqPortsTransport carries a google/nftables connection's messages to the kernel and back, unchanged
// but for one repair: google/nftables v0.3.0 encodes a masquerade with a port range (expr.Masq with
// ToPorts) without NFTA_MASQ_FLAGS, and the kernel applies the range only when the flags say
// NF_NAT_RANGE_PROTO_SPECIFIED, so such a rule masquerades to any port. The transport adds the flags to
// every masquerade expression that has a port register and no flags: PROTO_SPECIFIED, and with
// randomFully also random,fully-random. It is what makes ToPortsRules take effect.
//
// Use one per google/nftables connection and close it when done:
//
//	tr := nft.NewMasqPortsTransport(netnsFD, randomFully, sockOpts...)
//	defer tr.Close()
//	nc, err := nftables.New(tr.ConnOption())
//
// Socket options go to the transport, not to nftables.WithSockOptions: google/nftables applies those to
// its side of the transport, which has no socket. It is safe for concurrent use.
type MasqPortsTransport struct {
	netns       int
	randomFully bool
	sockOpts    []nftables.SockOption

	mu   sync.Mutex
	conn *netlink.Conn
	err  error
}

// NewMasqPortsTransport returns a transport to the network namespace behind netnsFD (0 means the
// caller's). The socket is opened on first use, with sockOpts applied.
func NewMasqPortsTransport(netnsFD int, randomFully bool, sockOpts ...nftables.SockOption) *MasqPortsTransport {
	return &MasqPortsTransport{netns: netnsFD, randomFully: randomFully, sockOpts: sockOpts}
}

// ConnOption makes a google/nftables connection use the transport.
func (m *MasqPortsTransport) ConnOption() nftables.ConnOption {
	return nftables.WithTestDial(m.roundTrip)
}

// Close closes the socket.
func (m *MasqPortsTransport) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil {
		return nil
	}
	err := m.conn.Close()
	m.conn, m.err = nil, fmt.Errorf("nftables transport: closed")
	return err
}

func (m *MasqPortsTransport) socket() (*netlink.Conn, error) {
	if m.conn != nil || m.err != nil {
		return m.conn, m.err
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: m.netns})
	if err != nil {
		return nil, err
	}
	for _, opt := range m.sockOpts {
		if err := opt(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	m.conn = c
	return c, nil
}

// roundTrip is the nltest.Func behind the connection: called with messages it sends them (repaired) and
// returns nothing yet; called with none, as a receive, it returns what the kernel sent.
func (m *MasqPortsTransport) roundTrip(req []netlink.Message) ([]netlink.Message, error) {
	m.mu.Lock()
	c, err := m.socket()
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if req == nil {
		msgs, err := c.Receive()
		for i := range msgs {
			msgs[i].Header.PID = nltest.PID // the port google/nftables' side believes it has
		}
		if err != nil || len(msgs) == 0 || msgs[len(msgs)-1].Header.Flags&netlink.Multi == 0 {
			return msgs, err
		}
		// Receive read a multi-part reply through its Done message and dropped it; google/nftables'
		// side reads until it sees one, so give it back.
		last := msgs[len(msgs)-1].Header
		return append(msgs, netlink.Message{
			Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: last.Sequence, PID: nltest.PID},
			Data:   make([]byte, 4),
		}), nil
	}
	out := make([]netlink.Message, len(req))
	for i, msg := range req {
		if msg.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE) {
			if msg.Data, err = m.repairRule(msg.Data); err != nil {
				return nil, fmt.Errorf("nftables transport: %w", err)
			}
		}
		msg.Header.Length, msg.Header.PID = 0, 0
		out[i] = msg
	}
	if _, err := c.SendMessages(out); err != nil {
		return nil, err
	}
	return nil, nil
}

const attrFlags = unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER

// repairRule adds the masquerade flags to a NEWRULE message's data (nfgenmsg and attributes).
func (m *MasqPortsTransport) repairRule(data []byte) ([]byte, error) {
	if len(data) < 4 {
		return data, nil
	}
	attrs, err := netlink.UnmarshalAttributes(data[4:])
	if err != nil {
		return nil, err
	}
	changed := false
	for i, a := range attrs {
		if a.Type&^attrFlags != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		list, err := netlink.UnmarshalAttributes(a.Data)
		if err != nil {
			return nil, err
		}
		for j, elem := range list {
			fixed, ok, err := m.repairExpr(elem.Data)
			if err != nil {
				return nil, err
			}
			if ok {
				list[j].Data, list[j].Length, changed = fixed, 0, true
			}
		}
		if attrs[i].Data, err = marshalAttrs(list); err != nil {
			return nil, err
		}
		attrs[i].Length = 0
	}
	if !changed {
		return data, nil
	}
	rest, err := marshalAttrs(attrs)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(data[:4]), rest...), nil
}

// repairExpr returns a masq expression's attributes with flags added, and whether it changed anything.
func (m *MasqPortsTransport) repairExpr(data []byte) ([]byte, bool, error) {
	attrs, err := netlink.UnmarshalAttributes(data)
	if err != nil {
		return nil, false, err
	}
	var name string
	dataAt := -1
	for i, a := range attrs {
		switch a.Type &^ attrFlags {
		case unix.NFTA_EXPR_NAME:
			name = string(bytes.TrimRight(a.Data, "\x00"))
		case unix.NFTA_EXPR_DATA:
			dataAt = i
		}
	}
	if name != "masq" || dataAt < 0 {
		return nil, false, nil
	}
	inner, err := netlink.UnmarshalAttributes(attrs[dataAt].Data)
	if err != nil {
		return nil, false, err
	}
	var ports, flags bool
	for _, a := range inner {
		switch a.Type &^ attrFlags {
		case unix.NFTA_MASQ_REG_PROTO_MIN:
			ports = true
		case unix.NFTA_MASQ_FLAGS:
			flags = true
		}
	}
	if !ports || flags {
		return nil, false, nil
	}
	f := uint32(unix.NF_NAT_RANGE_PROTO_SPECIFIED)
	if m.randomFully {
		f |= unix.NF_NAT_RANGE_PROTO_RANDOM | unix.NF_NAT_RANGE_PROTO_RANDOM_FULLY
	}
	inner = append([]netlink.Attribute{{Type: unix.NFTA_MASQ_FLAGS, Data: binaryutil.BigEndian.PutUint32(f)}}, inner...)
	if attrs[dataAt].Data, err = marshalAttrs(inner); err != nil {
		return nil, false, err
	}
	attrs[dataAt].Length = 0
	out, err := marshalAttrs(attrs)
	return out, err == nil, err
}

func marshalAttrs(attrs []netlink.Attribute) ([]byte, error) {
	for i := range attrs {
		attrs[i].Length = 0
	}
	return netlink.MarshalAttributes(attrs)
}
