package conntrack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
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
// An entry that ends between the dump and its deletion is counted in Gone, not an error. Flush stops at
// the first other error and returns what it did until then.
func (c *Conn) Flush(flipped4, flipped6 []ruleset.Interval, local []netip.Addr) (Result, error) {
	var r Result
	if len(flipped4) == 0 && len(flipped6) == 0 {
		return r, nil
	}
	conn, err := ct.Dial(&netlink.Config{NetNS: c.netns})
	if err != nil {
		return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: dial: %w", err))
	}
	defer conn.Close()
	flows, err := conn.Dump(nil)
	if err != nil {
		return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: dump: %w", err))
	}
	r.Seen = len(flows)
	isLocal := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		isLocal[a.Unmap()] = true
	}
	for _, f := range flows {
		if !Matches(f.TupleOrig.IP.SourceAddress, f.TupleReply.IP.SourceAddress, flipped4, flipped6, isLocal) {
			continue
		}
		// Only the tuples (the kernel finds the entry by the original one, with its zone; the reply one tells
		// the library the family) and the ID, which keeps a new entry that took the same tuple since the
		// dump from being deleted.
		del := ct.Flow{ID: f.ID, Zone: f.Zone, TupleOrig: f.TupleOrig, TupleReply: f.TupleReply}
		switch err := conn.Delete(del); {
		case errors.Is(err, unix.ENOENT):
			r.Gone++
		case err != nil:
			return r, ruleset.NeedsNetAdmin(fmt.Errorf("conntrack: delete %s: %w", f.TupleOrig, err))
		case f.TupleOrig.IP.SourceAddress.Unmap().Is4():
			r.Deleted4++
		default:
			r.Deleted6++
		}
	}
	return r, nil
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
