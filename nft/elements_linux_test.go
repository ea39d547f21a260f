package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// elements is google/nftables' form of the elements the kernel stores for ivs: a start key, and an
// interval-end key at the address after the last one (none when the interval runs to the end of the
// address space).
func elements(ivs []ruleset.Interval) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(ivs))
	for _, iv := range ivs {
		out = append(out, nftables.SetElement{Key: iv.First().AsSlice()})
		if end := iv.Last().Next(); end.IsValid() {
			out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// manyIntervals returns n disjoint, non-adjacent intervals of the family of base, the last one running to
// the end of the address space.
func manyIntervals(base netip.Addr, n int) []ruleset.Interval {
	var cfg config.Config
	cfg.EnableIPv6 = base.Is6()
	cfg.MasqLinkLocal, cfg.MasqLinkLocalIPv6 = true, true
	for i := range n - 1 {
		b := base.As16()
		binary.BigEndian.PutUint32(b[12:], binary.BigEndian.Uint32(b[12:])+uint32(i)*8)
		a := netip.AddrFrom16(b)
		bits := 126
		if base.Is4() {
			a, bits = a.Unmap(), 30
		}
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: netip.PrefixFrom(a, bits)})
	}
	top := netip.MustParsePrefix("ff00::/8")
	if base.Is4() {
		top = netip.MustParsePrefix("240.0.0.0/4")
	}
	cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: top})
	r := ruleset.Compile(cfg, ruleset.Options{})
	if base.Is4() {
		return r.NonMasq4
	}
	return r.NonMasq6
}

// googleMessages is what google/nftables v0.3.0 queues for one call of SetAddElements (or, with del,
// SetDeleteElements) with elems.
func googleMessages(t *testing.T, set *nftables.Set, del bool, elems []nftables.SetElement) []netlink.Message {
	t.Helper()
	var got []netlink.Message
	nc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) > 2 {
			got = append(got, req[1:len(req)-1]...)
		}
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if del {
		err = nc.SetDeleteElements(set, elems)
	} else {
		err = nc.SetAddElements(set, elems)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush() // fails waiting for acknowledgements, after handing over the messages
	return got
}

// elemCount is the number of elements in an element message's list.
func elemCount(t *testing.T, data []byte) int {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ad.Next() {
		if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					n++
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestElemWriterMatchesGoogle: the batch encodes set elements byte for byte as google/nftables does, for
// both families, with and without interval ends and set IDs, split into as many messages as needed.
func TestElemWriterMatchesGoogle(t *testing.T) {
	for _, tc := range []struct {
		name string
		ivs  []ruleset.Interval
		id   uint32
		del  bool
	}{
		{"ipv4 one", []ruleset.Interval{ruleset.PrefixInterval(netip.MustParsePrefix("10.0.0.0/8"))}, 0, false},
		{"ipv4 top only", []ruleset.Interval{ruleset.PrefixInterval(netip.MustParsePrefix("0.0.0.0/0"))}, 7, false},
		{"ipv4 many", manyIntervals(netip.MustParseAddr("10.0.0.0"), 5000), 3, false},
		{"ipv4 many delete", manyIntervals(netip.MustParseAddr("10.0.0.0"), 5000), 0, true},
		{"ipv6 many", manyIntervals(netip.MustParseAddr("2001:db8::"), 3000), 1, false},
		{"ipv6 many delete", manyIntervals(netip.MustParseAddr("2001:db8::"), 3000), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newBatch(ruleset.TableName)
			if tc.id != 0 {
				w.setIDs["nonmasq"] = tc.id
			}
			w.writeIntervals("nonmasq", tc.del, tc.ivs)
			want := elements(tc.ivs)
			set := &nftables.Set{Table: masqdTable(), Name: "nonmasq", ID: tc.id}
			msgType := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
			if tc.del {
				msgType = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM
			}
			var m netlink.Message
			rest, done := w.buf, 0
			for i := range w.msgs {
				if err := m.UnmarshalBinary(rest); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if w.msgs[i].offset != len(w.buf)-len(rest) {
					t.Fatalf("message %d at offset %d, recorded at %d", i, len(w.buf)-len(rest), w.msgs[i].offset)
				}
				rest = rest[m.Header.Length:]
				if m.Header.Type != msgType {
					t.Fatalf("message %d: type %#x, want %#x", i, m.Header.Type, msgType)
				}
				n := elemCount(t, m.Data)
				g := googleMessages(t, set, tc.del, want[done:done+n])
				if len(g) != 1 || !bytes.Equal(g[0].Data, m.Data) {
					t.Fatalf("message %d (elements %d-%d) differs from google/nftables' encoding:\n%x\nwant\n%x", i, done, done+n, m.Data, g[0].Data)
				}
				done += n
			}
			if len(rest) != 0 || done != len(want) {
				t.Fatalf("%d messages hold %d elements (%d bytes left over), want %d elements", len(w.msgs), done, len(rest), len(want))
			}
			if len(want) > 5000 && len(w.msgs) < 2 {
				t.Fatalf("%d elements in %d message", len(want), len(w.msgs))
			}
		})
	}
}

// TestApplyManyElements applies sets that take several messages each, with intervals running to the end
// of both address spaces, then changes them in place (deletes and adds in the same sets), reading each back
// (nft's listing and Read) and from a Conn that has to read the table because it remembers nothing.
func TestApplyManyElements(t *testing.T) {
	n := newNetns(t)
	want := ruleset.Ruleset{
		NonMasq4:    manyIntervals(netip.MustParseAddr("10.0.0.0"), 6000),
		NonMasq6:    manyIntervals(netip.MustParseAddr("2001:db8::"), 4000),
		IPv6:        true,
		RandomFully: true,
	}
	mustApply(t, n.conn, want, ruleset.Rebuilt)
	checkKernel(t, n, want)

	// Every third interval goes, and new ones come between the others.
	next := want
	next.NonMasq4, next.NonMasq6 = nil, nil
	for i, iv := range want.NonMasq4 {
		if i%3 != 0 || i == len(want.NonMasq4)-1 {
			next.NonMasq4 = append(next.NonMasq4, iv)
		}
		if i%5 == 1 && i < len(want.NonMasq4)-1 {
			a := iv.Last().Next().Next()
			next.NonMasq4 = append(next.NonMasq4, ruleset.IntervalFrom(a, a.Next()))
		}
	}
	for i, iv := range want.NonMasq6 {
		if i%3 != 1 {
			next.NonMasq6 = append(next.NonMasq6, iv)
		}
	}
	if next.SameRules(want) {
		t.Fatal("the change changes nothing")
	}
	mustApply(t, n.conn, next, ruleset.Updated)
	checkKernel(t, n, next)

	fresh := NewConn(n.conn.netns) // knows nothing of the kernel: reads the table, not larger than readLimit
	defer fresh.Close()
	mustApply(t, fresh, want, ruleset.Updated)
	checkKernel(t, n, want)
}

// TestCommitRefusedAfterForeignCommit: a batch computed at one ruleset generation is refused once someone
// else has committed, and changes nothing.
func TestCommitRefusedAfterForeignCommit(t *testing.T) {
	n := newNetns(t)
	want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	mustApply(t, n.conn, want, ruleset.Rebuilt)
	gen, err := n.conn.Generation()
	if err != nil {
		t.Fatal(err)
	}
	n.nft(t, "add", "table", "inet", "someone-else")

	err = commitLocked(t, n, gen, ruleset.Op{Kind: ruleset.DeleteElements, Set: ruleset.Set4Name, Elements: want.NonMasq4[:1]})
	if !errors.Is(err, unix.ERESTART) {
		t.Fatalf("commit at a stale generation: %v, want ERESTART", err)
	}
	checkKernel(t, n, want)
}

// commitLocked sends ops as one transaction on n's Conn's socket, as Apply does (holding the Conn's
// lock), with genID gen (0: none).
func commitLocked(t *testing.T, n *netns, gen uint32, ops ...ruleset.Op) error {
	t.Helper()
	n.conn.mu.Lock()
	defer n.conn.mu.Unlock()
	s, err := n.conn.socket()
	if err != nil {
		t.Fatal(err)
	}
	b := newBatch(ruleset.TableName)
	if err := b.transaction(ops); err != nil {
		t.Fatal(err)
	}
	_, err = s.commit(b, gen)
	return err
}

// TestCommitErrorNamesMessage: the kernel's refusal of one element message says which, and leaves the
// table as it was; Apply then recovers by reading the table.
func TestCommitErrorNamesMessage(t *testing.T) {
	n := newNetns(t)
	want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	mustApply(t, n.conn, want, ruleset.Rebuilt)

	err := commitLocked(t, n, 0,
		ruleset.Op{Kind: ruleset.AddElements, Set: ruleset.Set4Name, Elements: []ruleset.Interval{ruleset.PrefixInterval(netip.MustParsePrefix("100.64.0.0/10"))}},
		ruleset.Op{Kind: ruleset.DeleteElements, Set: ruleset.Set4Name, Elements: []ruleset.Interval{ruleset.PrefixInterval(netip.MustParsePrefix("192.0.2.0/24"))}}, // not there
	)
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete elements from set "+ruleset.Set4Name) {
		t.Fatalf("commit: %v, want ENOENT naming the delete", err)
	}
	checkKernel(t, n, want)

	// Someone deletes an element masqd remembers; Apply's delete of it fails, and Apply recovers.
	n.nft(t, "delete", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 10.0.0.0/8 }")
	n.conn.mu.Lock()
	// Pretend nobody committed, as if the delete had raced Apply's check: Apply trusts its memory.
	gen, err := n.conn.sock.generation()
	n.conn.lastGen = gen
	n.conn.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	next := ruleset.Compile(config.Config{NonMasqueradeCIDRs: cidrs("172.16.0.0/12", "192.168.0.0/16")}, ruleset.Options{RandomFully: true})
	if change, err := n.conn.Apply(next); err != nil {
		t.Fatalf("Apply after a foreign delete: %s, %v", change, err)
	}
	checkKernel(t, n, next)
}
