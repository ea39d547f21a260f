package conntrack

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

func ivs(t testing.TB, prefixes ...string) []ruleset.Interval {
	t.Helper()
	var out []ruleset.Interval
	for _, p := range prefixes {
		out = append(out, ruleset.PrefixInterval(netip.MustParsePrefix(p)))
	}
	return out
}

// TestMatches: the entries Flush deletes, decided from the source and the destination the rule saw.
func TestMatches(t *testing.T) {
	f4, f6 := ivs(t, "203.0.113.0/24"), ivs(t, "2001:db8:1::/48")
	local := map[netip.Addr]bool{netip.MustParseAddr("203.0.113.1"): true, netip.MustParseAddr("10.0.0.1"): true}
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"10.244.0.5", "203.0.113.9", true},             // a pod to a flipped range
		{"10.244.0.5", "198.51.100.9", false},           // a pod to a range that did not flip
		{"10.0.0.1", "203.0.113.9", false},              // the node's own connection
		{"127.0.0.1", "203.0.113.9", false},             // loopback is the host's
		{"10.244.0.5", "203.0.113.1", false},            // to the host itself: never masqueraded
		{"::ffff:10.244.0.5", "203.0.113.9", true},      // mapped addresses are read as IPv4
		{"fd00:10:244::5", "2001:db8:1::9", true},       // IPv6
		{"fd00:10:244::5", "2001:db8:2::9", false},      // IPv6, not flipped
		{"fd00:10:244::5", "::ffff:203.0.113.9", false}, // families differ: not a flow the rule saw
	} {
		if got := Matches(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst), f4, f6, local); got != tc.want {
			t.Errorf("Matches(%s -> %s) = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
	if Matches(netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("203.0.113.9"), nil, f6, local) {
		t.Error("matched with no IPv4 range flipped")
	}
}

// entry is a conntrack entry the test creates: src to dst as the client sent it, and (for a DNAT) the
// address the flow was sent to instead.
type entry struct {
	name     string
	src, dst string
	sport    uint16
	dnatTo   string
	wantGone bool
}

func (e entry) flow() ct.Flow {
	src, dst := netip.MustParseAddr(e.src), netip.MustParseAddr(e.dst)
	f := ct.NewFlow(unix.IPPROTO_UDP, 0, src, dst, e.sport, 4000, 120, 0)
	if e.dnatTo != "" {
		f.TupleReply.IP.SourceAddress = netip.MustParseAddr(e.dnatTo)
	}
	return f
}

// TestFlushKernel: in a network namespace of its own, Flush deletes exactly the entries from non-local
// sources to flipped destinations (the destination after DNAT), both families, and leaves the rest.
func TestFlushKernel(t *testing.T) {
	testenv.RequireKernel(t)
	ns := testenv.NewNS(t, "ct")
	ns.Run(t, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
	ns.Run(t, "ip", "addr", "add", "2001:db8:ff::1/128", "dev", "lo", "nodad")
	fd, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	conn, err := ct.Dial(&netlink.Config{NetNS: int(fd.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	entries := []entry{
		{name: "pod to flipped", src: "10.244.0.5", dst: "203.0.113.9", sport: 1001, wantGone: true},
		{name: "another pod to flipped", src: "10.244.1.6", dst: "203.0.113.200", sport: 1002, wantGone: true},
		{name: "pod to unflipped", src: "10.244.0.5", dst: "198.51.100.9", sport: 1003},
		{name: "node to flipped", src: "192.0.2.1", dst: "203.0.113.9", sport: 1004},
		{name: "Service DNAT'd into flipped", src: "10.244.0.5", dst: "10.96.0.10", dnatTo: "203.0.113.50", sport: 1005, wantGone: true},
		{name: "flipped VIP DNAT'd out of it", src: "10.244.0.5", dst: "203.0.113.77", dnatTo: "198.51.100.50", sport: 1006},
		{name: "IPv6 pod to flipped", src: "fd00:10:244::5", dst: "2001:db8:1::9", sport: 1007, wantGone: true},
		{name: "IPv6 pod to unflipped", src: "fd00:10:244::5", dst: "2001:db8:2::9", sport: 1008},
		{name: "IPv6 node to flipped", src: "2001:db8:ff::1", dst: "2001:db8:1::9", sport: 1009},
	}
	for _, e := range entries {
		if err := conn.Create(e.flow()); err != nil {
			t.Fatalf("create %s: %v", e.name, err)
		}
	}
	var local []netip.Addr
	if err := ns.Do(func() (err error) { local, err = HostAddrs(); return err }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(local, netip.MustParseAddr("192.0.2.1")) || !slices.Contains(local, netip.MustParseAddr("2001:db8:ff::1")) {
		t.Fatalf("HostAddrs in the namespace = %v, want its lo addresses", local)
	}

	res, err := NewConn(int(fd.Fd())).Flush(ivs(t, "203.0.113.0/24"), ivs(t, "2001:db8:1::/48"), local)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted4 != 3 || res.Deleted6 != 1 || res.Gone != 0 || res.Seen != len(entries) {
		t.Errorf("Flush = %+v, want 3 IPv4 and 1 IPv6 deleted of %d seen", res, len(entries))
	}
	left, err := conn.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want := e.flow().TupleOrig
		kept := slices.ContainsFunc(left, func(f ct.Flow) bool {
			return f.TupleOrig.IP == want.IP && f.TupleOrig.Proto.SourcePort == want.Proto.SourcePort
		})
		if kept == e.wantGone {
			t.Errorf("%s: kept %v, want %v", e.name, kept, !e.wantGone)
		}
	}

	// Nothing flipped: nothing is dumped or deleted.
	if res, err := NewConn(int(fd.Fd())).Flush(nil, nil, local); err != nil || res != (Result{}) {
		t.Errorf("Flush of nothing = %+v, %v; want nothing done", res, err)
	}
	// Again: the entries that matched are gone; nothing else matches.
	res, err = NewConn(int(fd.Fd())).Flush(ivs(t, "203.0.113.0/24"), ivs(t, "2001:db8:1::/48"), local)
	if err != nil || res.Deleted() != 0 {
		t.Errorf("second Flush = %+v, %v; want nothing deleted", res, err)
	}
}
