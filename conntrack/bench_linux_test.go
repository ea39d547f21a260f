package conntrack

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/internal/testenv"
)

// BenchmarkFlush: one Flush in a conntrack table of 100,000 UDP flows from pods, 1,000 of them to the range
// an edit flipped: the dump of the whole table, the match, and the 1,000 deletes. The deleted entries are
// created again between iterations, outside the timer.
func BenchmarkFlush(b *testing.B) {
	testenv.RequireKernel(b)
	const total, flipped = 100_000, 1_000
	ns := testenv.NewNS(b, "ctbench")
	fd, err := ns.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer fd.Close()
	conn, err := ct.Dial(&netlink.Config{NetNS: int(fd.Fd())})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// Flow i goes from pod 10.244.x.y, port 1024+i%60000, to 198.51.100.0/24, except the first flipped ones,
	// which go to 203.0.113.0/24.
	flow := func(i int) ct.Flow {
		src := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 250)})
		if i < flipped {
			dst = netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 250)})
		}
		return ct.NewFlow(unix.IPPROTO_UDP, 0, src, dst, uint16(1024+i%60000), 53, 600, 0)
	}
	create := func(from, to int) {
		for i := from; i < to; i++ {
			if err := conn.Create(flow(i)); err != nil {
				b.Fatalf("create flow %d: %v", i, err)
			}
		}
	}
	create(0, total)
	f4 := ivs(b, "203.0.113.0/24")
	c := NewConn(int(fd.Fd()))
	b.Run("impl=masqd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			res, err := c.Flush(f4, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if res.Deleted4 != flipped || res.Seen != total {
				b.Fatalf("Flush = %+v, want %d deleted of %d seen", res, flipped, total)
			}
			b.StopTimer()
			create(0, flipped)
			b.StartTimer()
		}
	})
	// What the troubleshooting guides have users run by hand: conntrack -D of the range's original
	// destinations (it neither follows a DNAT nor spares the node's own flows).
	b.Run("impl=conntrack-D", func(b *testing.B) {
		testenv.RequireCommand(b, "conntrack", "conntrack")
		want := fmt.Sprintf("%d flow entries have been deleted", flipped)
		for i := 0; i < b.N; i++ {
			out, err := ns.RunErr("conntrack", "-D", "-p", "udp", "-d", "203.0.113.0", "--mask-dst", "255.255.255.0")
			if err != nil || !strings.Contains(out, want) {
				b.Fatalf("conntrack -D: %v\n%s", err, out)
			}
			b.StopTimer()
			create(0, flipped)
			b.StartTimer()
		}
	})
}
